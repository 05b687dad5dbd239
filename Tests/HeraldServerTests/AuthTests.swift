import Foundation
import Herald
import HeraldCore
import HeraldServer
import Testing

/// Every authentication and authorisation rule of docs/SERVER.md, against a real server.
@Suite struct AuthTests {
    /// Each `/v1` route and `/metrics`: 401 without a token, with a malformed one, with an
    /// unknown one; the probes and the OpenAPI document answer without one.
    @Test func aRequestWithoutAValidTokenGets401() async throws {
        try await withServer { server in
            let routes: [(String, String)] = [
                ("GET", "/v1/status"), ("GET", "/v1/triggers"), ("GET", "/v1/deliveries"),
                ("GET", "/v1/deliveries/9:\(TestIDs.triggerA)"), ("GET", "/v1/records/9/explain"), ("GET", "/v1/records"),
                ("POST", "/v1/records"), ("POST", "/v1/deliveries/redrive"), ("POST", "/v1/deliveries/cancel"),
                ("POST", "/v1/triggers/\(TestIDs.triggerA)/invoke"), ("POST", "/v1/whatif"), ("GET", "/metrics"),
            ]
            let unknown = "hrd_000000000000_" + String(repeating: "0", count: 64)
            for (method, route) in routes {
                for token in [nil, "not-a-token", unknown] {
                    let result = try await server.request(method, route, token: token, body: method == "POST" ? "{}" : nil)
                    #expect(result.status == 401, "\(method) \(route) with \(token ?? "no token"): \(result.status) \(result.body)")
                    #expect(result.headers["www-authenticate"]?.hasPrefix("Bearer") == true)
                    #expect(!result.body.contains(unknown), "an error echoed the token")
                }
            }
            for route in ["/healthz", "/readyz", "/openapi.yaml"] {
                #expect(try await server.request("GET", route).status == 200, "\(route)")
            }
            // A revoked token is refused from its next request on.
            let token = try server.token()
            #expect(try await server.request("GET", "/v1/status", token: token).status == 200)
            let id = String(token.split(separator: "_")[1])
            #expect(try server.server.store.revokeToken(id: id))
            #expect(try await server.request("GET", "/v1/status", token: token).status == 401)
        }
    }

    /// A token bound to app A gets 403 for anything of app B: appending, reading deliveries,
    /// explaining, invoking, acting; its reads are limited to app A.
    @Test func aTokenOfAppANeverReachesAppB() async throws {
        try await withServer { server in
            try await server.waitIdle()
            let tokenA = try server.token(app: TestIDs.appA)
            let forbidden: [(String, String, String?)] = [
                ("GET", "/v1/deliveries?app=\(TestIDs.appB)", nil),
                ("GET", "/v1/deliveries?trigger=\(TestIDs.triggerB)", nil),
                ("GET", "/v1/triggers?app=\(TestIDs.appB)", nil),
                ("GET", "/v1/deliveries/12:\(TestIDs.triggerB)", nil),
                ("GET", "/v1/records/12/explain", nil),
                ("GET", "/v1/status", nil),
                ("POST", "/v1/records", #"{"type":"kv.insert","app_id":"\#(TestIDs.appB)","collection":"c","key":"x","value":1}"#),
                ("POST", "/v1/triggers/\(TestIDs.triggerB)/invoke", #"{"hello":1}"#),
                ("POST", "/v1/deliveries/redrive", #"{"app":"\#(TestIDs.appB)"}"#),
                ("POST", "/v1/deliveries/cancel", #"{"trigger":"\#(TestIDs.triggerB)"}"#),
                ("POST", "/v1/records", #"{"type":"app.created","app_id":"b0000000-0000-4000-8000-0000000000cc","name":"c"}"#),
            ]
            let before = server.herald.position
            for (method, route, body) in forbidden {
                let result = try await server.request(method, route, token: tokenA, body: body)
                #expect(result.status == 403, "\(method) \(route): \(result.status) \(result.body)")
            }
            #expect(server.herald.position == before, "a forbidden request appended")
            // Its reads see app A only.
            let deliveries = try await server.request("GET", "/v1/deliveries", token: tokenA)
            let apps = Set((deliveries.json["deliveries"] as? [[String: Any]] ?? []).compactMap { $0["app_id"] as? String })
            #expect(deliveries.status == 200 && apps == [TestIDs.appA], "\(deliveries.body)")
            let triggers = try await server.request("GET", "/v1/triggers", token: tokenA)
            let triggerApps = Set((triggers.json["triggers"] as? [[String: Any]] ?? []).compactMap { $0["app_id"] as? String })
            #expect(triggerApps == [TestIDs.appA], "\(triggers.body)")
            let records = try await server.request("GET", "/v1/records?from=1&limit=1000", token: tokenA)
            #expect(records.status == 200)
            #expect(!records.body.contains(TestIDs.appB) && records.body.contains(TestIDs.appA))
            #expect(!records.body.contains("admin_user.created"), "records of no app reached an app's token")
            // And it may do what it may within app A.
            let timeline = try await server.request("GET", "/v1/deliveries/9:\(TestIDs.triggerA)", token: tokenA)
            #expect(timeline.status == 200, "\(timeline.body)")
            let append = try await server.request("POST", "/v1/records", token: tokenA,
                                                  body: #"{"type":"kv.insert","app_id":"\#(TestIDs.appA)","collection":"c","key":"new","value":1}"#)
            #expect(append.status == 200, "\(append.body)")
        }
    }

    /// A read-only token reads, and never appends or acts.
    @Test func aReadOnlyTokenNeverAppendsOrActs() async throws {
        try await withServer { server in
            try await server.waitIdle()  // the engine appends no more outcomes meanwhile
            let token = try server.token(readOnly: true)
            #expect(try await server.request("GET", "/v1/deliveries", token: token).status == 200)
            #expect(try await server.request("GET", "/v1/status", token: token).status == 200)
            let before = server.herald.position
            for (route, body) in [
                ("/v1/records", #"{"type":"kv.insert","app_id":"\#(TestIDs.appA)","collection":"c","key":"x","value":1}"#),
                ("/v1/deliveries/redrive", "{}"), ("/v1/deliveries/cancel", "{}"),
                ("/v1/triggers/\(TestIDs.triggerA)/invoke", "{}"),
            ] {
                let result = try await server.request("POST", route, token: token, body: body)
                #expect(result.status == 403 && result.body.contains("read-only"), "\(route): \(result.status) \(result.body)")
            }
            #expect(server.herald.position == before)
        }
    }

    /// What a token appends names its own admin user: another admin in `registered_by` or
    /// `by` is refused (403), never rewritten.
    @Test func aTokenActsOnlyAsItsAdmin() async throws {
        try await withServer { server in
            try await server.waitIdle()
            let token = try server.token(admin: TestIDs.admin1)
            let other = TestIDs.admin2
            let before = server.herald.position
            let registration = #"{"type":"trigger.registered","trigger_id":"d0000000-0000-4000-8000-0000000000cc","app_id":"\#(TestIDs.appA)","script_id":"\#(TestIDs.scriptA)","kind":"kv","registered_by":"\#(other)","kv":{"collection_glob":"*","ops":["insert"]}}"#
            let redrive = #"{"type":"delivery.redriven","deliveries":["9:\#(TestIDs.triggerA)"],"by":"\#(other)"}"#
            for body in [registration, redrive] {
                let result = try await server.request("POST", "/v1/records", token: token, body: body)
                #expect(result.status == 403 && result.body.contains("is not the token's admin user"), "\(result.status) \(result.body)")
            }
            #expect(server.herald.position == before)
            // As itself, the registration goes through.
            let own = registration.replacingOccurrences(of: other, with: TestIDs.admin1)
            let result = try await server.request("POST", "/v1/records", token: token, body: own)
            #expect(result.status == 200, "\(result.body)")
        }
    }

    /// Deleting an admin user from the log revokes every token acting as it.
    @Test func deletingTheAdminUserRevokesItsTokens() async throws {
        try await withServer { server in
            let doomed = try server.token(admin: TestIDs.admin2)
            let admin = try server.token(admin: TestIDs.admin1)
            #expect(try await server.request("GET", "/v1/status", token: doomed).status == 200)
            let deletion = #"{"type":"admin_user.deleted","admin_user_id":"\#(TestIDs.admin2)"}"#
            #expect(try await server.request("POST", "/v1/records", token: admin, body: deletion).status == 200)
            let refused = try await server.request("GET", "/v1/status", token: doomed)
            #expect(refused.status == 401 && refused.body.contains("no longer exists"), "\(refused.body)")
        }
    }
}
