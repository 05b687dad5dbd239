import Herald
import HeraldCore
import Synchronization
import Testing

@Suite struct EngineTests {
    /// Two apps, each with its own admin-registered trigger on the same collection name.
    @Test func principalIsTheRegisteringAdminAndAppsStayIsolated() async throws {
        let seen = Mutex<[Invocation]>([])
        let executor = ClosureExecutor(fallback: { invocation in
            seen.withLock { $0.append(invocation) }
            return .ok
        })
        let clock = VirtualClock(startMs: 5_000)
        try await withTemporaryDirectory { path in
            let herald = try Herald.open(directory: DataDirectory(path: path),
                                         options: HeraldOptions(durability: .none, clock: clock, executor: executor))
            let (alice, bob) = (testID(1), testID(2))
            let (appA, appB) = (testID(10), testID(11))
            let (scriptA, scriptB) = (testID(20), testID(21))
            let (triggerA, triggerB) = (testID(30), testID(31))
            try herald.append([
                .adminUserCreated(adminUserID: alice, email: "alice@example.com"),
                .adminUserCreated(adminUserID: bob, email: "bob@example.com"),
                .appCreated(appID: appA, name: "a"), .appCreated(appID: appB, name: "b"),
                .scriptRegistered(ScriptRegistration(scriptID: scriptA, appID: appA, name: "sa", runtime: "swift", source: "")),
                .scriptRegistered(ScriptRegistration(scriptID: scriptB, appID: appB, name: "sb", runtime: "swift", source: "")),
                .triggerRegistered(TriggerRegistration(triggerID: triggerA, appID: appA, scriptID: scriptA, kind: .kv,
                                                       retry: .builtIn, registeredBy: alice,
                                                       kv: KVDetails(collectionGlob: "*", ops: []))),
                .triggerRegistered(TriggerRegistration(triggerID: triggerB, appID: appB, scriptID: scriptB, kind: .kv,
                                                       retry: .builtIn, registeredBy: bob,
                                                       kv: KVDetails(collectionGlob: "*", ops: []))),
            ])
            // A script of app A may not be used by a trigger of app B.
            #expect(throws: RecordError.self) {
                try herald.append(.triggerRegistered(TriggerRegistration(
                    triggerID: testID(32), appID: appB, scriptID: scriptA, kind: .kv, retry: .builtIn, registeredBy: bob,
                    kv: KVDetails(collectionGlob: "*", ops: []))))
            }
            for index in 0..<5 {
                try herald.append(.kv(KVMutation(op: .insert, appID: index % 2 == 0 ? appA : appB, collection: "users",
                                                 key: "k\(index)", value: "\(index)")))
            }
            try await herald.run(untilIdle: true)
            try herald.close()
        }
        let invocations = seen.withLock { $0 }
        #expect(invocations.count == 5)
        for invocation in invocations {
            guard case .kv(_, _, let mutation) = invocation.event else {
                Issue.record("expected a kv event")
                continue
            }
            #expect(mutation.appID == invocation.script.appID, "a script only ever sees its own app's events")
            let expectedPrincipal = invocation.script.appID == testID(10) ? "alice@example.com" : "bob@example.com"
            #expect(invocation.principal?.email == expectedPrincipal)
            #expect(invocation.json.contains("\"principal\":{\"admin_user_id\":\"\(invocation.principal?.id.description ?? "")\""))
        }
    }

    @Test func timeoutsAreRecordedAsErrorsAndExecutorFailuresDoNotStopTheEngine() async throws {
        let executor = ClosureExecutor(fallback: { invocation in
            if invocation.attempt == 1 {
                try? await Task.sleep(for: .seconds(5))  // real time: cut by the 100 ms timeout
                return .ok
            }
            return .ok
        })
        try await withTemporaryDirectory { path in
            let directory = DataDirectory(path: path)
            let herald = try Herald.open(directory: directory, options: HeraldOptions(
                durability: .none, executor: executor, attemptTimeoutMs: 100))
            let (admin, app, script, trigger) = (testID(1), testID(2), testID(3), testID(4))
            try herald.append(oneTriggerSetup(admin: admin, app: app, script: script, trigger: trigger,
                                              retry: RetryConfig(maxAttempts: 3, backoff: .constant, baseMs: 10)) + [
                .kv(KVMutation(op: .insert, appID: app, collection: "c", key: "k", value: "1")),
            ])
            try await herald.run(untilIdle: true)
            try herald.close()
            let deliveries = try directory.deliveries()
            #expect(deliveries.count == 1)
            #expect(deliveries.first?.status == .succeeded)
            #expect(deliveries.first?.attempts == 2)
            #expect(deliveries.first?.lastError == "timed out after 100 ms")
        }
    }

    /// Attempts start in turn on the run loop's thread, yet those that wait run at the same
    /// time, never more than `concurrency` of them: 12 deliveries whose script waits at a gate
    /// for a fifth attempt, which a limit of 4 never lets in (the gate lets the held ones go
    /// after 2 s), so the most ever held is 4: a fifth would mean a broken limit, fewer that
    /// they ran one after another. Nothing is timed.
    @Test func attemptsThatWaitRunConcurrentlyUpToTheLimit() async throws {
        try await atHighPriority { try await Self.attemptsThatWaitRunConcurrently() }
    }

    /// Holds each caller until `width` are held together, then lets that group go; after
    /// `patienceMs` it lets go whoever is held (so a test of a broken limit ends).
    final class Gate: Sendable {
        let width: Int
        let patienceMs: Int
        let state = Mutex<(running: Int, most: Int, held: [CheckedContinuation<Void, Never>])>((0, 0, []))

        init(width: Int, patienceMs: Int) {
            self.width = width
            self.patienceMs = patienceMs
        }

        var most: Int { state.withLock { $0.most } }

        func pass() async {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let group = state.withLock { s -> [CheckedContinuation<Void, Never>] in
                    s.running += 1
                    s.most = max(s.most, s.running)
                    s.held.append(continuation)
                    guard s.held.count >= width else { return [] }
                    defer { s.held = [] }
                    return s.held
                }
                for held in group { held.resume() }
                if group.isEmpty {
                    Task { [self] in
                        try? await Task.sleep(for: .milliseconds(patienceMs))
                        let late = state.withLock { s -> [CheckedContinuation<Void, Never>] in
                            defer { s.held = [] }
                            return s.held
                        }
                        for held in late { held.resume() }
                    }
                }
            }
            state.withLock { $0.running -= 1 }
        }
    }

    static func attemptsThatWaitRunConcurrently() async throws {
        let gate = Gate(width: 5, patienceMs: 2_000)
        let executor = ClosureExecutor(fallback: { _ in
            await gate.pass()
            return .ok
        })
        try await withTemporaryDirectory { path in
            let directory = DataDirectory(path: path)
            let herald = try Herald.open(directory: directory, options: HeraldOptions(
                durability: .none, executor: executor, concurrency: 4))
            let (admin, app, script, trigger) = (testID(1), testID(2), testID(3), testID(4))
            try herald.append(oneTriggerSetup(admin: admin, app: app, script: script, trigger: trigger)
                              + (0..<12).map { .kv(KVMutation(op: .insert, appID: app, collection: "c", key: "k\($0)", value: "1")) })
            try await herald.run(untilIdle: true)
            try herald.close()
            #expect(try directory.deliveries().allSatisfy { $0.status == .succeeded && $0.attempts == 1 })
            // Four at once: neither one after another nor past the limit.
            #expect(gate.most == 4)
        }
    }

    @Test func restartResumesPendingDeliveries() async throws {
        try await withTemporaryDirectory { path in
            let directory = DataDirectory(path: path)
            let (admin, app, script, trigger) = (testID(1), testID(2), testID(3), testID(4))
            do {
                let herald = try Herald.open(directory: directory, options: HeraldOptions(
                    durability: .always, executor: ClosureExecutor(fallback: { _ in .error("not yet") })))
                try herald.append([
                    .adminUserCreated(adminUserID: admin, email: "a@example.com"),
                    .appCreated(appID: app, name: "a"),
                    .scriptRegistered(ScriptRegistration(scriptID: script, appID: app, name: "s", runtime: "swift", source: "")),
                    .triggerRegistered(TriggerRegistration(triggerID: trigger, appID: app, scriptID: script, kind: .kv,
                                                           retry: RetryConfig(maxAttempts: 5, backoff: .constant, baseMs: 1),
                                                           registeredBy: admin, kv: KVDetails(collectionGlob: "*", ops: []))),
                    .kv(KVMutation(op: .insert, appID: app, collection: "c", key: "k", value: "{\"a\":[1,2]}")),
                ])
                try await herald.runDue()  // attempt 1 fails; the engine "crashes" (is dropped without close)
                try herald.close()
            }
            let seen = Mutex<[String]>([])
            let herald = try Herald.open(directory: directory, options: HeraldOptions(
                executor: ClosureExecutor(fallback: { invocation in
                    if case .kv(_, _, let m) = invocation.event { seen.withLock { $0.append(m.value?.description ?? "") } }
                    return .ok
                })))
            #expect(herald.status().pending == 1)
            try await herald.run(untilIdle: true)
            try herald.close()
            #expect(seen.withLock { $0 } == ["{\"a\":[1,2]}"], "the source record is reloaded from the log after a restart")
            let delivery = try directory.deliveries().first
            #expect(delivery?.status == .succeeded)
            #expect(delivery?.attempts == 2)
            #expect(try directory.verifyProjection().isEmpty)
        }
    }
}
