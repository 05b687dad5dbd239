import Foundation
import Herald
import Testing

/// Reading commands never create or change anything: they work on a read-only data directory
/// and refuse a missing one instead of creating it.
@Suite struct ReadOnlyCLITests {
    /// Every file under `path` with its size and modification time.
    static func listing(_ path: String) throws -> [String] {
        let manager = FileManager.default
        var out: [String] = []
        for name in try manager.subpathsOfDirectory(atPath: path).sorted() {
            let attributes = try manager.attributesOfItem(atPath: path + "/" + name)
            let size = (attributes[.size] as? NSNumber)?.intValue ?? -1
            let modified = (attributes[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
            out.append("\(name) \(size) \(modified)")
        }
        return out
    }

    /// `chmod -R u+w`, so the temporary directory can be removed.
    static func makeWritable(_ path: String) {
        chmod(path, 0o755)
        for name in (try? FileManager.default.subpathsOfDirectory(atPath: path)) ?? [] {
            var info = stat()
            let full = path + "/" + name
            if stat(full, &info) == 0 { chmod(full, (info.st_mode & 0o7777) | 0o200) }
        }
    }

    @Test func readsWorkOnAReadOnlyDataDirectory() async throws {
        guard heraldIsBuilt() else { return }
        // Root ignores permissions: read as `nobody` through setpriv, as a real operator would be.
        let asRoot = getuid() == 0
        if asRoot && !FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv") {
            Issue.record("running as root without /usr/bin/setpriv (util-linux): cannot drop privileges to check read-only access")
            return
        }
        try await withTemporaryDirectory { path in
            let data = path + "/data"
            chmod(path, 0o755)
            #expect(try await LogDamageCLITests.herald(["import", "--data", data, packageRoot + "/fixtures/logs/dead-letter-chain/log.jsonl"]).status == 0)
            #expect(try await LogDamageCLITests.herald(["project", "--data", data]).status == 0)
            let commands = [["dump"], ["stats"], ["deliveries", "--format", "jsonl"], ["triggers", "--format", "jsonl"], ["explain", "8"],
                            ["explain", "8:d0000000-0000-4000-8000-000000000001"], ["status"], ["verify"]]
            var expected: [String] = []
            for command in commands {
                expected.append(try await LogDamageCLITests.herald(command + ["--data", data]).stdout)
            }
            #expect(try await LogDamageCLITests.herald(["-R", "a-w", data], binary: "/bin/chmod").status == 0)
            defer { Self.makeWritable(data) }
            let before = try Self.listing(data)
            for (command, output) in zip(commands, expected) {
                var arguments = command + ["--data", data]
                var binary = heraldBinary
                if asRoot {
                    arguments = ["--reuid=65534", "--regid=65534", "--clear-groups", binary] + arguments
                    binary = "/usr/bin/setpriv"
                }
                let run = try await LogDamageCLITests.herald(arguments, binary: binary)
                #expect(run.status == 0, "\(command) on a read-only directory: \(run.stderr)")
                if command != ["status"] {  // status prints "due now" against the wall clock
                    #expect(run.stdout == output, "\(command) read something else on a read-only directory")
                }
            }
            #expect(try Self.listing(data) == before, "a read changed the data directory")
        }
    }

    @Test func readsRefuseAMissingDataDirectoryAndCreateNothing() async throws {
        guard heraldIsBuilt() else { return }
        try await withTemporaryDirectory { path in
            let missing = path + "/nowhere"
            let (admin, trigger) = (LogDamageCLITests.admin, "d0000000-0000-4000-8000-000000000001")
            for command in [["verify"], ["dump"], ["stats"], ["deliveries"], ["status"], ["triggers"],
                            // Actions on deliveries: nothing to act on, and no directory is made.
                            ["redrive", "--by", admin], ["redrive", "--by", admin, "--dry-run"], ["cancel", "--by", admin],
                            ["invoke", trigger, "--payload", "1", "--by", admin], ["whatif", "--disable", trigger]] {
                let run = try await LogDamageCLITests.herald(command + ["--data", missing])
                #expect(run.status != 0, "\(command) exited 0 on a missing data directory")
                #expect(run.stderr.contains("There is no data directory at \(missing)"), "\(command): \(run.stderr)")
                #expect(!FileManager.default.fileExists(atPath: missing), "\(command) created the data directory")
            }
        }
    }
}

/// `herald verify` while another process appends (a `herald run` recording outcomes and
/// projecting): every run passes — it checks the log through the end it first read and
/// compares one snapshot of the projection with a rebuild to the same position.
@Suite struct VerifyWhileAppendingTests {
    @Test func verifyPassesWhileRunAppends() async throws {
        guard heraldIsBuilt() else { return }
        try await withTemporaryDirectory { path in
            let data = path + "/data", input = path + "/in.jsonl"
            let (admin, app) = (LogDamageCLITests.admin, LogDamageCLITests.app)
            var text = #"{"type":"admin_user.created","admin_user_id":"\#(admin)","email":"ops@example.com"}"# + "\n"
            text += #"{"type":"app.created","app_id":"\#(app)","name":"shop"}"# + "\n"
            text += #"{"type":"script.registered","script_id":"c0000000-0000-4000-8000-000000000001","app_id":"\#(app)","name":"ok","runtime":"process","source":"sleep 0.04; cat >/dev/null"}"# + "\n"
            text += #"{"type":"trigger.registered","trigger_id":"d0000000-0000-4000-8000-000000000001","app_id":"\#(app)","script_id":"c0000000-0000-4000-8000-000000000001","kind":"kv","registered_by":"\#(admin)","kv":{"collection_glob":"*","ops":[]}}"# + "\n"
            // About 8 s of attempts (1,500 × 40 ms, 8 at a time): several verifies overlap it
            // even on a loaded machine.
            for i in 0..<1500 {
                text += #"{"type":"kv.insert","app_id":"\#(app)","collection":"c","key":"k\#(i)","value":\#(i)}"# + "\n"
            }
            try text.write(toFile: input, atomically: true, encoding: .utf8)
            #expect(try await LogDamageCLITests.herald(["import", "--data", data, input]).status == 0)
            let runner = try ChildProgram(heraldBinary, ["run", "--data", data, "--until-idle", "--quiet", "--concurrency", "8"])
            var verified = 0, whileRunning = 0
            // Bound: 40 verifies, or until the run ends.
            while verified < 40 {
                let wasRunning = runner.isRunning
                let verify = try await LogDamageCLITests.herald(["verify", "--data", data])
                #expect(verify.status == 0, "verify \(verified) failed while another process appended: \(verify.stderr)")
                #expect(!verify.stderr.contains("warning"), "verify \(verified) warned while another process appended: \(verify.stderr)")
                verified += 1
                if wasRunning && runner.isRunning { whileRunning += 1 } else if !runner.isRunning { break }
            }
            let run = await runner.wait()
            #expect(run.status == 0, "\(run.stderr)")
            #expect(whileRunning >= 3, "only \(whileRunning) verifies ran while the run appended")
            #expect(try await LogDamageCLITests.herald(["verify", "--data", data]).status == 0)
        }
    }
}

/// Every read command, over and over, while `herald run` works through 10,000 deliveries:
/// each read succeeds (a read opens the log and the projection read-only and never writes
/// while a writer holds the log), the run never fails, and `verify` passes afterwards.
@Suite struct ReadsWhileRunningTests {
    @Test func everyReadSucceedsWhileRunWorks() async throws {
        guard heraldIsBuilt() else { return }
        try await withTemporaryDirectory { path in
            let data = path + "/data", input = path + "/in.jsonl"
            let (admin, app) = (LogDamageCLITests.admin, LogDamageCLITests.app)
            let trigger = "d0000000-0000-4000-8000-000000000001"
            var text = #"{"type":"admin_user.created","admin_user_id":"\#(admin)","email":"ops@example.com"}"# + "\n"
            text += #"{"type":"app.created","app_id":"\#(app)","name":"shop"}"# + "\n"
            text += #"{"type":"script.registered","script_id":"c0000000-0000-4000-8000-000000000001","app_id":"\#(app)","name":"ok","runtime":"process","source":"cat >/dev/null"}"# + "\n"
            text += #"{"type":"trigger.registered","trigger_id":"\#(trigger)","app_id":"\#(app)","script_id":"c0000000-0000-4000-8000-000000000001","kind":"kv","registered_by":"\#(admin)","kv":{"collection_glob":"*","ops":[]}}"# + "\n"
            for i in 0..<10_000 {
                text += #"{"type":"kv.insert","app_id":"\#(app)","collection":"c","key":"k\#(i)","value":\#(i)}"# + "\n"
            }
            try text.write(toFile: input, atomically: true, encoding: .utf8)
            #expect(try await LogDamageCLITests.herald(["import", "--data", data, input]).status == 0)
            let runner = try ChildProgram(heraldBinary, ["run", "--data", data, "--until-idle", "--quiet", "--concurrency", "16"])
            let reads: [[String]] = [
                ["status", "--data", data],
                ["deliveries", "--data", data, "--format", "jsonl"],
                ["explain", "--data", data, "5:" + trigger],
                ["triggers", "--data", data],
                ["verify", "--data", data],
            ]
            var done = 0, whileRunning = 0
            var failures: [String] = []
            for round in 0..<50 {
                for read in reads {
                    let wasRunning = runner.isRunning
                    let run = try await LogDamageCLITests.herald(read)
                    if run.status != 0 || run.stderr.contains("warning") {
                        failures.append("round \(round), \(read[0]): exit \(run.status): \(run.stderr.prefix(300))")
                    }
                    done += 1
                    if wasRunning && runner.isRunning { whileRunning += 1 }
                }
            }
            #expect(failures.isEmpty, "\(failures.count) of \(done) reads failed, the first: \(failures.first ?? "")")
            let run = await runner.wait()
            #expect(run.status == 0, "\(run.stderr)")
            #expect(whileRunning >= 25, "only \(whileRunning) of \(done) reads ran while the run worked")
            let verify = try await LogDamageCLITests.herald(["verify", "--data", data])
            #expect(verify.status == 0, "\(verify.stderr)")
            let deliveries = try await LogDamageCLITests.herald(["deliveries", "--data", data, "--format", "jsonl"])
            #expect(deliveries.stdout.split(separator: "\n").count == 10_000)
            #expect(!deliveries.stdout.contains(#""status":"pending""#))
        }
    }
}

/// `herald random-log`: the same seed prints the same bytes, every record type of the contract
/// appears (the operator actions too), and the log imports whole: it is valid.
@Suite struct RandomLogCLITests {
    @Test func aSeedGivesOneValidLogWithEveryRecordType() async throws {
        guard heraldIsBuilt() else { return }
        try await withTemporaryDirectory { path in
            let first = try await LogDamageCLITests.herald(["random-log", "--seed", "7", "--records", "4000"])
            let second = try await LogDamageCLITests.herald(["random-log", "--seed", "7", "--records", "4000"])
            #expect(first.status == 0 && !first.stdout.isEmpty && first.stdout == second.stdout)
            let other = try await LogDamageCLITests.herald(["random-log", "--seed", "8", "--records", "4000"])
            #expect(other.stdout != first.stdout)
            let types = ["admin_user.created", "app.created", "script.registered", "trigger.registered", "trigger.updated",
                         "trigger.deleted", "kv.insert", "kv.update", "kv.delete", "delivery.attempted",
                         "delivery.redriven", "delivery.cancelled", "delivery.invoked"]
            let missing = types.filter { !first.stdout.contains(#""type":"\#($0)""#) }
            #expect(missing.isEmpty, "no \(missing) in 4,000 random records")
            try first.stdout.write(toFile: path + "/log.jsonl", atomically: true, encoding: .utf8)
            let imported = try await LogDamageCLITests.herald(["import", "--data", path + "/data", path + "/log.jsonl"])
            #expect(imported.status == 0, "\(imported.stderr)")
            let lines = first.stdout.split(separator: "\n").count
            #expect((imported.stdout + imported.stderr).contains("\(lines)"), "\(imported.stdout) \(imported.stderr)")
            #expect(try await LogDamageCLITests.herald(["random-log", "--records", "0"]).status == 2)
        }
    }
}

/// What the CLI says about itself: `--version` prints the library's version, and an option
/// that takes a status offers the names it accepts, not raw numbers.
@Suite struct CLISelfDescriptionTests {
    @Test func versionAndStatusNames() async throws {
        guard heraldIsBuilt() else { return }
        let version = try await LogDamageCLITests.herald(["--version"])
        #expect(version.status == 0 && version.stdout == Herald.version + "\n", "\(version.stdout)")
        let help = try await LogDamageCLITests.herald(["deliveries", "--help"])
        #expect(help.stdout.contains("pending, succeeded") && !help.stdout.contains("values: 0"), "\(help.stdout)")
        let wrong = try await LogDamageCLITests.herald(["deliveries", "--status", "2"])
        #expect(wrong.status == 2 && wrong.stderr.contains("'pending', 'succeeded', 'dead' or 'cancelled'"), "\(wrong.stderr)")
    }

    /// Exit status 0 ok, 1 for the data, 2 for usage (with the usage); never ArgumentParser's 64.
    @Test func exitCodesSayWhoseMistakeItIs() async throws {
        guard heraldIsBuilt() else { return }
        try await withTemporaryDirectory { path in
            let log = try await LogDamageCLITests.herald(["random-log", "--seed", "3", "--records", "300"])
            try log.stdout.write(toFile: path + "/log.jsonl", atomically: true, encoding: .utf8)
            let data = path + "/data"
            #expect(try await LogDamageCLITests.herald(["import", "--data", data, path + "/log.jsonl"]).status == 0)
            for usage in [["nosuch"], ["deliveries", "--data", data, "--limit", "0"], ["deliveries", "--data", data, "--format", "xml"],
                          ["explain", "--data", data, "not-a-target"], ["run", "--data", data, "--concurrency", "0"]] {
                let run = try await LogDamageCLITests.herald(usage)
                #expect(run.status == 2 && run.stderr.contains("Usage:"), "\(usage): exit \(run.status), \(run.stderr)")
            }
            // status and stats for tools: one JSON object with the text's numbers.
            let text = try await LogDamageCLITests.herald(["status", "--data", data]).stdout
            let json = try await LogDamageCLITests.herald(["status", "--data", data, "--format", "json"]).stdout
            let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
            for (key, label) in [("position", "position"), ("pending", "pending"), ("due_now", "due now"), ("succeeded", "succeeded"),
                                 ("dead", "dead"), ("cancelled", "cancelled")] {
                let line = text.split(separator: "\n").first { $0.hasPrefix(label + " ") }
                let value = line.flatMap { $0.split(separator: " ").last.flatMap { Int($0) } }
                #expect(value != nil && (object[key] as? Int) == value, "\(key): \(String(describing: object[key])) vs \(String(describing: line))")
            }
            let stats = try await LogDamageCLITests.herald(["stats", "--data", data, "--format", "json"]).stdout
            let statsObject = try #require(try JSONSerialization.jsonObject(with: Data(stats.utf8)) as? [String: Any])
            #expect((statsObject["records"] as? Int) == (object["position"] as? Int))
            // explain P --format json: the record, and the same deliveries the text lists.
            for position in 1...40 {
                let text = try await LogDamageCLITests.herald(["explain", "--data", data, "\(position)"]).stdout
                let json = try await LogDamageCLITests.herald(["explain", "--data", data, "\(position)", "--format", "json"]).stdout
                let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any], "\(position): \(json)")
                #expect((object["position"] as? Int) == position)
                #expect(((object["record"] as? [String: Any])?["type"] as? String).map { text.contains($0) } == true, "\(position)")
                for key in ["created", "finished"] {
                    let ids = (object[key] as? [[String: Any]] ?? []).compactMap { d -> String? in
                        guard let source = d["source_position"] as? Int, let trigger = d["trigger_id"] as? String else { return nil }
                        return "\(source):\(trigger)"
                    }
                    #expect(ids.allSatisfy { text.contains($0) }, "\(position) \(key): \(ids)")
                    #expect(ids.isEmpty == !text.contains("deliveries \(key)"), "\(position) \(key): \(ids) vs \(text)")
                }
            }
            // A mistyped id to select by is an error that says so, not an empty answer.
            let trigger = try #require(try await LogDamageCLITests.herald(["triggers", "--data", data, "--format", "jsonl"]).stdout
                .split(separator: "\n").first.flatMap { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] })
            let appID = try #require(trigger["app_id"] as? String)
            let unknown = "11111111-1111-4111-8111-111111111111"
            let wrongKind = try await LogDamageCLITests.herald(["deliveries", "--data", data, "--trigger", appID])
            #expect(wrongKind.status == 1 && wrongKind.stderr.contains("is an app, not a trigger"), "\(wrongKind.stderr)")
            let never = try await LogDamageCLITests.herald(["redrive", "--data", data, "--app", unknown, "--by", unknown, "--dry-run"])
            #expect(never.status == 1 && never.stderr.contains("No app \(unknown) was ever created"), "\(never.stderr)")
            #expect(try await LogDamageCLITests.herald(["deliveries", "--data", data, "--app", appID, "--limit", "1"]).status == 0)
            for bad in [["explain", "--data", data, "999999"], ["deliveries", "--data", path + "/missing"]] {
                let run = try await LogDamageCLITests.herald(bad)
                #expect(run.status == 1 && run.stderr.hasPrefix("Error: ") && !run.stderr.contains("Usage:"),
                        "\(bad): exit \(run.status), \(run.stderr)")
            }
            // `--at P` outside 0…last is a usage error (SEMANTICS §3.5): exit 2, with the usage.
            for command in [["deliveries"], ["triggers"], ["whatif", "--disable", trigger["trigger_id"] as? String ?? ""]] {
                let run = try await LogDamageCLITests.herald(command + ["--data", data, "--at", "999999"])
                #expect(run.status == 2 && run.stderr.contains("--at 999999 is outside the log") && run.stderr.contains("Usage:"),
                        "\(command): exit \(run.status), \(run.stderr)")
            }
        }
    }
}
