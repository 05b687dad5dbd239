import Foundation
import Herald
import HeraldCore
import HeraldServer
import Testing

/// Every route of the API against a real server: what it answers, and what it appends.
@Suite struct RouteTests {
    /// `POST /v1/records` appends a batch whole or not at all; a 422 lists every bad line.
    @Test func aBatchIsAppendedWholeOrNotAtAll() async throws {
        try await withServer { server in
            try await server.waitIdle()  // the engine appends no more outcomes meanwhile
            let token = try server.token()
            let before = server.herald.position
            let good = #"{"type":"kv.insert","app_id":"\#(TestIDs.appA)","collection":"c","key":"x","value":1}"#
            let bad = [good, #"{"type":"kv.insert","app_id":"\#(TestIDs.appA)"}"#, good,
                       #"{"type":"app.deleted","app_id":"b0000000-0000-4000-8000-0000000000ee"}"#].joined(separator: "\n")
            let refused = try await server.request("POST", "/v1/records", token: token, body: bad)
            #expect(refused.status == 422, "\(refused.body)")
            let lines = (refused.json["error"] as? [String: Any])?["lines"] as? [[String: Any]] ?? []
            #expect(lines.compactMap { $0["location"] as? String } == ["line 2", "line 4"], "\(refused.body)")
            #expect(server.herald.position == before, "a refused batch appended")
            let batch = [good, good.replacingOccurrences(of: #""key":"x""#, with: #""key":"y""#)].joined(separator: "\n") + "\n"
            let appended = try await server.request("POST", "/v1/records", token: token, body: batch)
            #expect(appended.status == 200, "\(appended.body)")
            let first = appended.json["first_position"] as? Int ?? 0
            #expect(appended.json["count"] as? Int == 2 && appended.json["last_position"] as? Int == first + 1)
            // Durable and in the log when the answer came.
            #expect(try server.directory.openReader().record(at: UInt64(first + 1))?.body.type.name == "kv.insert")
            let empty = try await server.request("POST", "/v1/records", token: token, body: "")
            #expect(empty.status == 422)
        }
    }

    /// `expected_position` appends only when the log is exactly there (409 otherwise).
    @Test func expectedPositionGuardsTheAppend() async throws {
        try await withServer { server in
            try await server.waitIdle()
            let token = try server.token()
            let at = server.herald.position
            let line = #"{"type":"kv.insert","app_id":"\#(TestIDs.appB)","collection":"c","key":"e","value":1}"#
            let stale = try await server.request("POST", "/v1/records?expected_position=\(at - 1)", token: token, body: line)
            #expect(stale.status == 409, "\(stale.body)")
            #expect(server.herald.position == at)
            let current = try await server.request("POST", "/v1/records?expected_position=\(at)", token: token, body: line)
            #expect(current.status == 200 && current.json["first_position"] as? Int == Int(at) + 1, "\(current.body)")
        }
    }

    /// A retry with the same `Idempotency-Key` and body gets the first answer and appends
    /// nothing; the key with another body is refused; a restart keeps the answer.
    @Test func anIdempotencyKeyAnswersARetryWithoutAppendingTwice() async throws {
        try await withServer { server in
            let token = try server.token()
            let line = #"{"type":"kv.insert","app_id":"\#(TestIDs.appA)","collection":"c","key":"once","value":1}"#
            let first = try await server.request("POST", "/v1/records", token: token, body: line, headers: ["Idempotency-Key": "order-17"])
            #expect(first.status == 200, "\(first.body)")
            let count = { try server.directory.openReader().deliveries().filter { $0.id.sourcePosition == UInt64(first.json["first_position"] as? Int ?? 0) }.count }
            let retry = try await server.request("POST", "/v1/records", token: token, body: line, headers: ["Idempotency-Key": "order-17"])
            #expect(retry.status == 200 && retry.body == first.body && retry.headers["idempotent-replayed"] == "true", "\(retry.body)")
            var inserts = 0
            try server.directory.openReader().forEach(from: 1, through: nil) { _, record in
                if case .kv(let m) = record.body, m.key == "once" { inserts += 1 }
                return true
            }
            #expect(inserts == 1, "the retry appended again")
            #expect(try count() == 1)
            let other = try await server.request("POST", "/v1/records", token: token, body: line.replacingOccurrences(of: "once", with: "twice"),
                                                 headers: ["Idempotency-Key": "order-17"])
            #expect(other.status == 422 && other.body.contains("different request body"), "\(other.body)")
            let badKey = try await server.request("POST", "/v1/records", token: token, body: line, headers: ["Idempotency-Key": "has space"])
            #expect(badKey.status == 400)
        }
    }

    /// A body over the server's limit is refused with 413, and appends nothing.
    @Test func anOversizedBodyIsRefused() async throws {
        try await withServer(maxBodyBytes: 4_096) { server in
            try await server.waitIdle()  // the engine appends no more outcomes meanwhile
            let token = try server.token()
            let big = #"{"type":"kv.insert","app_id":"\#(TestIDs.appA)","collection":"c","key":"big","value":""# + String(repeating: "x", count: 5_000) + #""}"#
            let before = server.herald.position
            let result = try await server.request("POST", "/v1/records", token: token, body: big)
            #expect(result.status == 413, "\(result.body)")
            #expect(server.herald.position == before)
        }
    }

    /// `GET /v1/deliveries` pages through every delivery in canonical order with its cursor,
    /// the same deliveries as `herald deliveries`, filters included.
    @Test func deliveriesPageThroughEveryDelivery() async throws {
        try await withServer(log: testLog(events: 7)) { server in
            try await server.waitIdle()
            let token = try server.token()
            var seen: [String] = []
            var cursor: String?
            var pages = 0
            repeat {
                let page = try await server.request("GET", "/v1/deliveries?limit=3" + (cursor.map { "&cursor=\($0)" } ?? ""), token: token)
                #expect(page.status == 200, "\(page.body)")
                let deliveries = page.json["deliveries"] as? [[String: Any]] ?? []
                seen += deliveries.map { "\($0["source_position"] ?? ""):\($0["trigger_id"] ?? "")" }
                cursor = page.json["next_cursor"] as? String
                pages += 1
            } while cursor != nil && pages < 100
            let expected = try server.directory.openReader().deliveries().map(\.id.description)
            #expect(seen == expected && expected.count == 14)
            let dead = try await server.request("GET", "/v1/deliveries?status=dead", token: token)
            let statuses = (dead.json["deliveries"] as? [[String: Any]] ?? []).compactMap { $0["status"] as? String }
            #expect(statuses == Array(repeating: "dead", count: 7), "\(dead.body)")
            let past = try await server.request("GET", "/v1/deliveries?at=9", token: token)
            #expect((past.json["deliveries"] as? [[String: Any]])?.count == 1, "\(past.body)")
            for query in ["status=sleeping", "limit=0", "cursor=x", "app=nope", "at=99999"] {
                let result = try await server.request("GET", "/v1/deliveries?\(query)", token: token)
                #expect(result.status == 400 || result.status == 404, "\(query): \(result.status) \(result.body)")
            }
        }
    }

    /// The reads: status, triggers, a timeline, a record's explanation, the records from a
    /// position, the metrics and the OpenAPI document.
    @Test func theReadsAnswerWhatTheCLIAnswers() async throws {
        try await withServer { server in
            try await server.waitIdle()
            let token = try server.token()
            let status = try await server.request("GET", "/v1/status", token: token)
            #expect(status.status == 200 && status.json["position"] as? Int == Int(server.herald.position) && status.json["pending"] as? Int == 0)
            let triggers = try await server.request("GET", "/v1/triggers", token: token)
            #expect((triggers.json["triggers"] as? [[String: Any]])?.compactMap { $0["trigger_id"] as? String } == [TestIDs.triggerA, TestIDs.triggerB],
                    "\(triggers.body)")
            let timeline = try await server.request("GET", "/v1/deliveries/9:\(TestIDs.triggerA)", token: token)
            let expected = ExplanationText.json(try server.directory.openReader().timeline(of: DeliveryID("9:\(TestIDs.triggerA)")!))
            #expect(timeline.status == 200 && timeline.body == expected)
            #expect(try await server.request("GET", "/v1/deliveries/99:\(TestIDs.triggerA)", token: token).status == 404)
            // As of a position: the log replayed through it.
            let past = try await server.request("GET", "/v1/status?at=10", token: token)
            #expect(past.json["position"] as? Int == 10 && past.json["pending"] as? Int == 2 && past.json["in_flight"] as? Int == 0, "\(past.body)")
            let then = try await server.request("GET", "/v1/deliveries/9:\(TestIDs.triggerA)?at=10", token: token)
            let pastExpected = ExplanationText.json(try server.directory.openReader().timeline(of: DeliveryID("9:\(TestIDs.triggerA)")!, through: 10))
            #expect(then.status == 200 && then.body == pastExpected && then.body.contains(#""status":"pending""#), "\(then.body)")
            #expect(try await server.request("GET", "/v1/status?at=99999", token: token).status == 404)
            #expect(try await server.request("GET", "/v1/deliveries/nope", token: token).status == 400)
            let explain = try await server.request("GET", "/v1/records/9/explain", token: token)
            let explained = ExplanationText.json(try server.directory.openReader().explain(position: 9))
            #expect(explain.status == 200 && explain.body == explained)
            #expect(try await server.request("GET", "/v1/records/99999/explain", token: token).status == 404)
            let records = try await server.request("GET", "/v1/records?from=2&limit=3", token: token)
            let lines = records.body.split(separator: "\n")
            #expect(lines.count == 3 && lines.first?.hasPrefix(#"{"position":2,"type":"admin_user.created""#) == true, "\(records.body)")
            #expect(records.headers["herald-next-from"] == "5")
            let metrics = try await server.request("GET", "/metrics", token: token)
            #expect(metrics.status == 200 && metrics.headers["content-type"]?.hasPrefix("text/plain") == true)
            let document = try await server.request("GET", "/openapi.yaml")
            let file = try String(contentsOfFile: packageRoot + "/Schema/openapi.yaml", encoding: .utf8)
            #expect(document.body + "\n" == file, "the served document is not Schema/openapi.yaml (run Tools/gen-schema)")
            // A method a route does not have: 405 with the ones it has.
            let wrong = try await server.request("DELETE", "/v1/records", token: token)
            #expect(wrong.status == 405 && wrong.headers["allow"] == "GET, POST", "\(wrong.status) \(wrong.headers)")
            #expect(try await server.request("PUT", "/v1/deliveries/9:\(TestIDs.triggerA)", token: token).headers["allow"] == "GET")
            #expect(try await server.request("GET", "/v1/nothing-here", token: token).status == 404)
            #expect(try await server.request("GET", "/healthz").body.contains("ok"))
            #expect(try await server.request("GET", "/readyz").body.contains("ready"))
        }
    }

    /// Redrive and cancel (dry run, then for real) and invoke act as the token's admin user.
    @Test func operatorActionsActAsTheTokensAdmin() async throws {
        try await withServer { server in
            try await server.waitIdle()
            let token = try server.token(admin: TestIDs.admin2)
            let before = server.herald.position
            let dry = try await server.request("POST", "/v1/deliveries/redrive", token: token, body: #"{"app":"\#(TestIDs.appA)","dry_run":true}"#)
            #expect(server.herald.position == before, "a dry run appended")
            #expect(dry.status == 200 && dry.json["count"] as? Int == 3 && dry.json["first_position"] is NSNull, "\(dry.body)")
            let redriven = try await server.request("POST", "/v1/deliveries/redrive", token: token,
                                                    body: #"{"trigger":"\#(TestIDs.triggerA)","limit":2,"reason":"fixed"}"#)
            #expect(redriven.status == 200 && redriven.json["count"] as? Int == 2, "\(redriven.body)")
            let position = UInt64(redriven.json["first_position"] as? Int ?? 0)
            guard case .deliveryRedriven(let action)? = try server.directory.openReader().record(at: position)?.body else {
                Issue.record("no delivery.redriven at \(position)")
                return
            }
            #expect(action.by == HeraldID(TestIDs.admin2) && action.reason == "fixed" && action.deliveries.count == 2)
            let invoked = try await server.request("POST", "/v1/triggers/\(TestIDs.triggerB)/invoke", token: token, body: #"{"hello":"world"}"#)
            #expect(invoked.status == 200, "\(invoked.body)")
            let at = UInt64(invoked.json["position"] as? Int ?? 0)
            guard case .deliveryInvoked(let invocation)? = try server.directory.openReader().record(at: at)?.body else {
                Issue.record("no delivery.invoked at \(at)")
                return
            }
            #expect(invocation.by == HeraldID(TestIDs.admin2) && invocation.payload == JSONText(#"{"hello":"world"}"#))
            #expect(try await server.request("POST", "/v1/triggers/d0000000-0000-4000-8000-0000000000ff/invoke", token: token, body: "{}").status == 404)
            let nothing = try await server.request("POST", "/v1/deliveries/cancel", token: token, body: #"{"status":"dead"}"#)
            #expect(nothing.status == 422 || nothing.json["count"] as? Int == 0, "\(nothing.body)")
            let malformed = try await server.request("POST", "/v1/deliveries/cancel", token: token, body: "[1,2]")
            #expect(malformed.status == 400)
        }
    }
}

/// The package root, found from this file.
let packageRoot: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.path
}()

/// `POST /v1/whatif`: what the log would have derived with triggers changed.
@Suite struct WhatIfRouteTests {
    @Test func aWhatIfSaysWhatWouldDifferAndAppendsNothing() async throws {
        try await withServer { server in
            try await server.waitIdle()
            let reader = try server.token(readOnly: true)
            let before = server.herald.position
            // App A's trigger disabled: its three deliveries would not exist, nor their attempts.
            let result = try await server.request("POST", "/v1/whatif", token: reader,
                                                  body: #"{"disable":["\#(TestIDs.triggerA)"]}"#)
            #expect(result.status == 200, "\(result.body)")
            let diff = result.json["diff"] as? String ?? ""
            #expect(diff.hasSuffix("3 unchanged, 3 only recorded, 0 only what-if, 0 changed; 3 recorded records skipped\n"), "\(diff)")
            let triggers = Set((result.json["deliveries"] as? [[String: Any]] ?? []).compactMap { $0["trigger_id"] as? String })
            #expect(triggers == [TestIDs.triggerB], "\(result.body)")
            #expect(server.herald.position == before, "a what-if appended")
            // A token of app A changes app A's triggers only, and sees app A's deliveries only.
            let tokenA = try server.token(app: TestIDs.appA)
            let other = try await server.request("POST", "/v1/whatif", token: tokenA, body: #"{"disable":["\#(TestIDs.triggerB)"]}"#)
            #expect(other.status == 403, "\(other.body)")
            let own = try await server.request("POST", "/v1/whatif", token: tokenA, body: #"{"disable":["\#(TestIDs.triggerA)"],"at":11}"#)
            let apps = Set((own.json["deliveries"] as? [[String: Any]] ?? []).compactMap { $0["app_id"] as? String })
            #expect(own.status == 200 && !apps.contains(TestIDs.appB), "\(own.body)")
            for body in [#"{}"#, #"{"set":["nope"]}"#, #"{"set":"x"}"#, #"{"disable":["\#(TestIDs.triggerA)"],"at":-1}"#] {
                #expect(try await server.request("POST", "/v1/whatif", token: reader, body: body).status == 400, "\(body)")
            }
        }
    }
}

/// `GET /v1/records?follow=true`: a tail of the log for downstream consumers.
@Suite struct FollowTests {
    /// A follower gets the records there are, then each new one once it is durable, over the
    /// same response; a graceful stop ends the stream instead of waiting for the client.
    @Test func aFollowerSeesNewRecordsAsTheyBecomeDurable() async throws {
        try await withServer { server in
            try await server.waitIdle()
            let token = try server.token()
            let output = server.path + "/follow.jsonl"
            let curl = Process()
            curl.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
            curl.arguments = ["-s", "-N", "--max-time", "60", "-o", output, "-H", "Authorization: Bearer \(token)",
                              "http://127.0.0.1:\(server.port)/v1/records?from=3&follow=true"]
            try curl.run()
            defer { if curl.isRunning { curl.terminate() } }
            func lines() -> [String] {
                ((try? String(contentsOfFile: output, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
            }
            let at = server.herald.position
            let deadline = ContinuousClock.now + .seconds(20)
            while lines().count < Int(at) - 2, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
            #expect(lines().count == Int(at) - 2 && lines().first?.hasPrefix(#"{"position":3,"#) == true, "\(lines())")
            let appended = try await server.request("POST", "/v1/records", token: token,
                                                    body: #"{"type":"kv.insert","app_id":"\#(TestIDs.appB)","collection":"c","key":"tail","value":1}"#)
            let position = appended.json["first_position"] as? Int ?? 0
            while !lines().contains(where: { $0.hasPrefix(#"{"position":\#(position),"type":"kv.insert""#) }), ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(lines().contains { $0.hasPrefix(#"{"position":\#(position),"type":"kv.insert""#) && $0.contains(#""key":"tail""#) })
            #expect(curl.isRunning, "the follow response ended")
            // Bad values are refused.
            #expect(try await server.request("GET", "/v1/records?follow=yes", token: token).status == 400)
        }
    }
}
