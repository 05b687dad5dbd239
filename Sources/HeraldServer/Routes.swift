import Foundation
import Herald
import HeraldCore
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import ServiceLifecycle
import NIOCore

extension HeraldServer {
    func addRoutes(to router: Router<ServerRequestContext>) {
        router.get("/healthz") { _, _ in
            if let failure = self.herald.failure {
                throw APIError(.serviceUnavailable, "the engine stopped taking work: \(failure)")
            }
            return jsonResponse(Array(#"{"status":"ok"}"#.utf8) + [0x0A])
        }
        // Reachable only once recovery, the snapshot load and the key settlement are done
        // (the server starts listening after them); not ready once the engine failed.
        router.get("/readyz") { _, _ in
            if let failure = self.herald.failure {
                throw APIError(.serviceUnavailable, "not ready: the engine stopped taking work: \(failure)")
            }
            return jsonResponse(Array(#"{"status":"ready"}"#.utf8) + [0x0A])
        }
        router.get("/openapi.yaml") { _, _ in
            jsonResponse(Array(OpenAPIDocument.yaml.utf8), contentType: "application/yaml")
        }
        router.get("/metrics") { _, _ in
            jsonResponse(self.registry.emitToBuffer(), contentType: "text/plain; version=0.0.4")
        }
        router.get("/v1/status") { request, context in try await self.status(request, context.requireGrant()) }
        router.get("/v1/triggers") { request, context in try await self.triggers(request, context.requireGrant()) }
        router.get("/v1/deliveries") { request, context in try await self.deliveries(request, context.requireGrant()) }
        router.get("/v1/deliveries/:id") { request, context in
            try await self.timeline(context.parameters.get("id") ?? "", request, context.requireGrant())
        }
        router.get("/v1/records/:position/explain") { _, context in
            try await self.explain(context.parameters.get("position") ?? "", context.requireGrant())
        }
        router.get("/v1/records") { request, context in try await self.records(request, context.requireGrant()) }
        router.post("/v1/records") { request, context in try await self.append(request, context.requireGrant()) }
        router.post("/v1/deliveries/redrive") { request, context in
            try await self.act(.redrive, request, context.requireGrant())
        }
        router.post("/v1/deliveries/cancel") { request, context in
            try await self.act(.cancel, request, context.requireGrant())
        }
        router.post("/v1/whatif") { request, context in try await self.whatIf(request, context.requireGrant()) }
        router.post("/v1/triggers/:id/invoke") { request, context in
            try await self.invoke(context.parameters.get("id") ?? "", request, context.requireGrant())
        }
    }

    // MARK: - Reads

    /// `GET /v1/status[?at=P]`: the engine's counters, or the log's as of P (replayed; nothing
    /// is in flight in the past). A token bound to an app cannot see the engine's.
    func status(_ request: Request, _ grant: Grant) async throws -> Response {
        if let refusal = AccessRules.refusal(reading: nil, by: grant) { throw APIError(.forbidden, refusal) }
        let status: EngineStatus
        if let at = try Self.position(request.uri.queryParameters, "at") {
            let directory = self.directory
            status = try await blocking {
                let state = try directory.replay(through: at)
                let due = state.pending.dueSummary(now: Int64(Date().timeIntervalSince1970 * 1000))
                return EngineStatus(position: state.position, pending: state.pending.count, due: due.due, inFlight: 0,
                                    nextDueAt: due.earliest)
            }
        } else {
            status = herald.status()
        }
        var out = JSONOutput()
        out.beginObject()
        out.key("position"); out.uint(status.position)
        out.key("pending"); out.int(status.pending)
        out.key("due"); out.int(status.due)
        out.key("in_flight"); out.int(status.inFlight)
        out.key("next_due_at")
        if let next = status.nextDueAt { out.int(next) } else { out.null() }
        out.key("healthy"); out.bool(herald.failure == nil)
        out.endObject()
        out.newline()
        return jsonResponse(out.bytes)
    }

    /// `GET /v1/triggers[?app=A][&at=P]`: the live triggers in registration order.
    func triggers(_ request: Request, _ grant: Grant) async throws -> Response {
        let query = request.uri.queryParameters
        let app = try Self.id(query, "app")
        let at = try Self.position(query, "at")
        let scope = try scopedApp(app, grant)
        let herald = self.herald, directory = self.directory
        return try await blocking {
            let (registry, position): (Registry, UInt64)
            if let at {
                let state = try directory.replay(through: at)
                (registry, position) = (state.registry, state.position)
            } else {
                let state = herald.registryState
                (registry, position) = (state.registry, state.position)
            }
            var out = JSONOutput()
            out.beginObject()
            out.key("position"); out.uint(position)
            out.key("triggers")
            out.beginArray()
            for trigger in registry.liveTriggers(app: scope) { CanonicalOutput.append(trigger, to: &out) }
            out.endArray()
            out.endObject()
            out.newline()
            return jsonResponse(out.bytes)
        }
    }

    /// `GET /v1/deliveries`: deliveries in canonical order, filtered like `herald deliveries`,
    /// a page at a time (`limit`, default 100, at most 1,000; `cursor` from the last page's
    /// `next_cursor`).
    func deliveries(_ request: Request, _ grant: Grant) async throws -> Response {
        let query = request.uri.queryParameters
        let trigger = try Self.id(query, "trigger")
        let at = try Self.position(query, "at")
        var status: DeliveryStatus?
        if let text = query["status"] {
            guard let parsed = DeliveryStatus(name: String(text)) else {
                throw APIError(.badRequest, "status '\(text)' is not one of pending, succeeded, dead, cancelled")
            }
            status = parsed
        }
        let limit = try Self.int(query, "limit", default: 100, in: 1...1_000)
        var after: (position: UInt64, rank: UInt64)?
        if let cursor = query["cursor"] {
            let parts = cursor.split(separator: ".")
            guard parts.count == 2, let position = UInt64(parts[0]), let rank = UInt64(parts[1]) else {
                throw APIError(.badRequest, "cursor '\(cursor)' is not one this server gave (POSITION.RANK)")
            }
            after = (position, rank)
        }
        let app = try scopedApp(try Self.id(query, "app"), grant)
        if let trigger, let bound = grant.app {
            let owner = herald.registryState.registry.trigger(trigger)?.appID
            if let owner, owner != bound { throw APIError(.forbidden, "the token is bound to app \(bound), not app \(owner)") }
        }
        let selection = DeliverySelection(app: app, trigger: trigger, status: status, from: after?.position)
        let directory = self.directory, cursor = after
        return try await blocking {
            var page: [Delivery] = []
            var more = false
            struct Enough: Error {}
            func take(_ delivery: Delivery) throws {
                if let cursor, delivery.id.sourcePosition == cursor.position, delivery.triggerRank <= cursor.rank { return }
                if page.count == limit {
                    more = true
                    throw Enough()
                }
                page.append(delivery)
            }
            do {
                if let at {
                    for delivery in selection.picked(from: try directory.deliveries(at: at)) { try take(delivery) }
                } else {
                    try directory.forEachDelivery(matching: selection, take)
                }
            } catch is Enough {}
            var out = JSONOutput()
            out.beginObject()
            out.key("deliveries")
            out.beginArray()
            for delivery in page { CanonicalOutput.append(delivery, to: &out) }
            out.endArray()
            out.key("next_cursor")
            if more, let last = page.last {
                out.string("\(last.id.sourcePosition).\(last.triggerRank)")
            } else {
                out.null()
            }
            out.endObject()
            out.newline()
            return jsonResponse(out.bytes)
        }
    }

    /// `GET /v1/deliveries/{P}:{TRIGGER_ID}[?at=P]`: the delivery's timeline (as `explain
    /// --format json`), as of the head or of position P.
    func timeline(_ text: String, _ request: Request, _ grant: Grant) async throws -> Response {
        guard let id = DeliveryID(text) else {
            throw APIError(.badRequest, "'\(text)' is not a delivery id (SOURCE_POSITION:TRIGGER_ID)")
        }
        let at = try Self.position(request.uri.queryParameters, "at")
        let herald = self.herald, directory = self.directory
        let timeline = try await blocking {
            if let at { return try directory.openReader().timeline(of: id, through: at) }
            return try herald.explain(delivery: id)
        }
        guard let delivery = timeline.current ?? timeline.created else {
            throw APIError(.notFound, "there is no delivery \(id)")
        }
        if let refusal = AccessRules.refusal(reading: delivery.appID, by: grant) { throw APIError(.forbidden, refusal) }
        return jsonResponse(Array(ExplanationText.json(timeline).utf8))
    }

    /// `GET /v1/records/{P}/explain`: why the record did or did not fire (as `explain P --format json`).
    func explain(_ text: String, _ grant: Grant) async throws -> Response {
        guard let position = UInt64(text), position >= 1, position <= UInt64(Int64.max) else {
            throw APIError(.badRequest, "'\(text)' is not a log position (1…\(Int64.max))")
        }
        let herald = self.herald
        let explanation = try await blocking { try herald.explain(position: position) }
        if grant.app != nil {
            let app = AccessRules.app(of: explanation.record.body, in: herald.registryState)
            if let refusal = AccessRules.refusal(reading: app, by: grant) { throw APIError(.forbidden, refusal) }
        }
        return jsonResponse(Array(ExplanationText.json(explanation).utf8))
    }

    /// `GET /v1/records?from=P[&limit=N][&follow=true]`: the durable records from `P` (default:
    /// the log's first position) on as
    /// JSON Lines (the interchange format, each with its `position` first), at most `limit`
    /// (default 1,000, at most 10,000); `Herald-Next-From` names the position to ask for next.
    /// With `follow=true` the response does not end: records are streamed as they become
    /// durable (no limit), at the pace the client reads them, until it disconnects or the
    /// server shuts down. A token bound to an app sees its app's records only.
    func records(_ request: Request, _ grant: Grant) async throws -> Response {
        let query = request.uri.queryParameters
        // By default the log's first position: 1, or where a compaction left it.
        let from = max(try Self.position(query, "from") ?? (try directory.openReader().firstPosition), 1)
        let limit = try Self.int(query, "limit", default: 1_000, in: 1...10_000)
        var follow = false
        if let text = query["follow"] {
            guard text == "true" || text == "false" else { throw APIError(.badRequest, "follow must be true or false") }
            follow = text == "true"
        }
        let herald = self.herald
        guard follow else {
            let (lines, next) = try await blocking { try self.recordLines(from: from, through: herald.durablePosition, limit: limit, grant) }
            return jsonResponse(lines, contentType: "application/jsonl", headers: [HTTPField.Name("Herald-Next-From")!: "\(next)"])
        }
        let body = ResponseBody { writer in
            var next = from
            while !Task.isCancelled, !self.stopping.load(ordering: .acquiring), herald.failure == nil {
                let durable = herald.durablePosition
                guard next <= durable else {
                    try await Task.sleep(for: .milliseconds(20))
                    continue
                }
                let start = next
                let (lines, after) = try await self.blocking { try self.recordLines(from: start, through: durable, limit: 1_000, grant) }
                // Waits while the client does not read: the server holds one chunk per follower.
                if !lines.isEmpty { try await writer.write(ByteBuffer(bytes: lines)) }
                next = after
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: [.contentType: "application/jsonl"], body: body)
    }

    /// The JSON lines of the records `from`…`through` a grant may see, at most `limit`, and
    /// the position after the last one read.
    func recordLines(from: UInt64, through: UInt64, limit: Int, _ grant: Grant) throws -> ([UInt8], UInt64) {
        var out = JSONOutput()
        var next = from
        guard from <= through else { return ([], next) }
        var written = 0
        let encoder = RecordJSONEncoder()
        let state = grant.app == nil ? nil : herald.registryState
        try directory.openReader().forEach(from: from, through: through) { position, record in
            next = position + 1
            if let state, AccessRules.refusal(reading: AccessRules.app(of: record.body, in: state), by: grant) != nil {
                return true
            }
            var line = JSONOutput()
            encoder.append(record, to: &line)
            // The position first, then the record's own fields.
            out.fragment(#"{"position":"#)
            out.uint(position)
            if line.bytes.count > 2 { out.fragment(",") }
            out.bytes.append(contentsOf: line.bytes.dropFirst())
            out.newline()
            written += 1
            return written < limit
        }
        return (out.bytes, next)
    }

    // MARK: - Appends

    /// `POST /v1/records`: one record or a JSON Lines batch, all or nothing, like `herald
    /// import`. 422 lists every bad line; `expected_position` (409 when the log has moved);
    /// an `Idempotency-Key` answers a retry with the first response instead of appending twice.
    func append(_ request: Request, _ grant: Grant) async throws -> Response {
        if grant.readOnly { throw APIError(.forbidden, "the token is read-only") }
        let query = request.uri.queryParameters
        let expected = try Self.position(query, "expected_position")
        let key = request.headers[HTTPField.Name("Idempotency-Key")!]
        if let key, key.isEmpty || key.count > 200 || !key.utf8.allSatisfy({ $0 >= 0x21 && $0 < 0x7F }) {
            throw APIError(.badRequest, "Idempotency-Key must be 1 to 200 printable ASCII characters without spaces")
        }
        let body = try await collect(request)
        let digest = ServerStore.digest(body)
        let store = self.store, herald = self.herald
        if let key {
            switch try await blocking({ try store.keyState(admin: grant.admin, key: key, request: digest) }) {
            case .new: break
            case .answered(let response):
                return jsonResponse(Array(response.utf8) + [0x0A], headers: [HTTPField.Name("Idempotent-Replayed")!: "true"])
            case .mismatch:
                throw APIError(.unprocessableContent, "Idempotency-Key '\(key)' was used for a different request body")
            case .inProgress:
                throw APIError(.conflict, "a request with Idempotency-Key '\(key)' is being appended; retry later")
            }
        }
        let retryDefaults = options.retryDefaults
        return try await blocking {
            // Decode and check every line against the state the lines before it build (all bad
            // lines are reported at once), then append; the engine checks the batch again
            // under its lock, against the state it then has.
            // Lines are decoded first: the state to check them against needs the deliveries only
            // when a line acts on them (an attempt, a redrive, a cancel, an invocation); a copy
            // of the whole state held meanwhile would make the engine copy its pending deliveries.
            let text = body.split(separator: 0x0A, omittingEmptySubsequences: false)
            let decoder = RecordJSONDecoder(retryDefaults: retryDefaults)
            var decodedLines: [(number: Int, decoded: ImportValidator.Decoded)] = []
            for (index, raw) in text.enumerated() {
                var line = Array(raw)
                if line.last == 0x0D { line.removeLast() }
                if line.isEmpty && index == text.count - 1 && index > 0 { break }  // the final newline
                decodedLines.append((index + 1, line.withUnsafeBufferPointer { ImportValidator.decode($0, with: decoder) }))
            }
            let actsOnDeliveries = decodedLines.contains { if case .success(let line) = $0.decoded { line.body.actsOnDeliveries } else { false } }
            var validator = ImportValidator(state: actsOnDeliveries ? herald.dispatcher : herald.registryState, retryDefaults: retryDefaults,
                                            nowMs: Int64(Date().timeIntervalSince1970 * 1000))
            var lines: [DecodedLine] = []
            var accepted: [Record] = []
            var refusals: [String] = []
            for (number, decoded) in decodedLines {
                if case .success(let decodedLine) = decoded,
                   let refusal = AccessRules.refusal(of: decodedLine.body, by: grant, in: validator.state) {
                    refusals.append("line \(number): \(refusal)")
                }
                if case .success(let decodedLine) = decoded { lines.append(decodedLine) }
                if let record = validator.add(decoded: decoded, number: number, acceptedSoFar: { visit in try accepted.forEach(visit) }) {
                    accepted.append(record)
                }
            }
            if let refusal = refusals.first { throw APIError(.forbidden, refusal) }
            if !validator.errors.isEmpty {
                throw APIError(.unprocessableContent, "\(validator.errors.count + validator.errorsDropped) invalid line(s); nothing was appended",
                               lines: validator.errors)
            }
            guard !lines.isEmpty else { throw APIError(.unprocessableContent, "the body holds no record") }
            var intent: AppendIntent?
            if key != nil || expected != nil {
                intent = AppendIntent(record: { range in
                    if let expected, range.lowerBound != expected + 1 {
                        throw APIError(.conflict, "the log is at position \(range.lowerBound - 1), not the expected \(expected)")
                    }
                    if let key {
                        try store.recordIntent(admin: grant.admin, key: key, request: digest, positions: range,
                                               nowMs: Int64(Date().timeIntervalSince1970 * 1000))
                    }
                }, withdraw: {
                    if let key { try store.dropIntent(admin: grant.admin, key: key) }
                })
            }
            let range = try herald.append(lines: lines, intent: intent)
            let response = HeraldServer.appendedBody(range)
            if let key {
                try store.recordResponse(admin: grant.admin, key: key, response: response,
                                         nowMs: Int64(Date().timeIntervalSince1970 * 1000))
            }
            return jsonResponse(Array(response.utf8) + [0x0A])
        }
    }

    // MARK: - Operator actions

    enum Action { case redrive, cancel }

    /// `POST /v1/deliveries/redrive` and `/cancel`: the selection of `herald redrive`/`cancel`,
    /// acted on by the token's admin user (`dry_run`: the deliveries it would act on).
    func act(_ action: Action, _ request: Request, _ grant: Grant) async throws -> Response {
        if grant.readOnly { throw APIError(.forbidden, "the token is read-only") }
        let parsed = try SelectionBody(try await collect(request))
        let app = try scopedApp(parsed.app, grant)
        let trigger = parsed.trigger
        if let trigger, let bound = grant.app, let owner = herald.registryState.registry.trigger(trigger)?.appID, owner != bound {
            throw APIError(.forbidden, "the token is bound to app \(bound), not app \(owner)")
        }
        let selection = DeliverySelection(app: app, trigger: trigger, script: parsed.script, status: parsed.status,
                                          errorContains: parsed.errorContains, from: parsed.from, to: parsed.to,
                                          limit: parsed.limit)
        let herald = self.herald
        return try await blocking {
            let ids: [DeliveryID]
            var positions: ClosedRange<UInt64>?
            if parsed.dryRun {
                let state = herald.dispatcher
                ids = try (action == .redrive ? OperatorActions.redrivable(in: state, selection)
                                              : OperatorActions.cancellable(in: state, selection)).map(\.id)
            } else {
                let result = try action == .redrive ? herald.redrive(selection, by: grant.admin, reason: parsed.reason)
                                                    : herald.cancel(selection, by: grant.admin, reason: parsed.reason)
                (ids, positions) = (result.deliveries, result.positions)
            }
            var out = JSONOutput()
            out.beginObject()
            out.key("dry_run"); out.bool(parsed.dryRun)
            out.key("count"); out.int(ids.count)
            out.key("deliveries")
            out.beginArray()
            for id in ids { out.string(id.description) }
            out.endArray()
            out.key("first_position")
            if let positions { out.uint(positions.lowerBound) } else { out.null() }
            out.key("last_position")
            if let positions { out.uint(positions.upperBound) } else { out.null() }
            out.endObject()
            out.newline()
            return jsonResponse(out.bytes)
        }
    }

    /// `POST /v1/triggers/{id}/invoke`: runs the trigger's script once, now; the body is the
    /// payload (one JSON value, at most 1 MiB).
    func invoke(_ text: String, _ request: Request, _ grant: Grant) async throws -> Response {
        if grant.readOnly { throw APIError(.forbidden, "the token is read-only") }
        guard let trigger = HeraldID(text) else { throw APIError(.badRequest, "'\(text)' is not a trigger id") }
        let herald = self.herald
        guard let owner = herald.registryState.registry.trigger(trigger)?.appID else {
            throw APIError(.notFound, "there is no live trigger \(trigger)")
        }
        if let refusal = AccessRules.refusal(reading: owner, by: grant) { throw APIError(.forbidden, refusal) }
        let body = try await collect(request)
        let payload = JSONText(String(decoding: body, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
        let position = try await blocking { try herald.invoke(trigger: trigger, by: grant.admin, payload: payload) }
        return jsonResponse(Array(#"{"position":\#(position),"delivery":"\#(position):\#(trigger)"}"#.utf8) + [0x0A])
    }

    /// `POST /v1/whatif`: `{"set": ["TRIGGER_ID.FIELD=VALUE", …], "disable": ["TRIGGER_ID", …],
    /// "at": P}` replays the log with the triggers changed and answers what would differ (as
    /// `herald whatif`); appends nothing, so a read-only token may ask. A token bound to an app
    /// may change its app's triggers only and sees its app's deliveries only.
    func whatIf(_ request: Request, _ grant: Grant) async throws -> Response {
        let body = try await collect(request)
        guard let object = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] else {
            throw APIError(.badRequest, "the body is not a JSON object with set and disable lists")
        }
        for key in object.keys where !["set", "disable", "at"].contains(key) {
            throw APIError(.badRequest, "'\(key)' is not a what-if field (set, disable, at)")
        }
        func strings(_ key: String) throws -> [String] {
            guard let value = object[key] else { return [] }
            guard let list = value as? [Any], let texts = list as? [String], texts.count == list.count else {
                throw APIError(.badRequest, "\(key) must be a list of strings")
            }
            return texts
        }
        var at: UInt64?
        if let value = object["at"] { at = try wholeNumber(value, "at", 0...UInt64(Int64.max)) }
        var overrides: [TriggerOverride] = []
        do {
            for text in try strings("set") { overrides.append(try TriggerOverride.parse(text)) }
            for text in try strings("disable") { overrides.append(try TriggerOverride.disable(text)) }
        } catch let error as WhatIfError {
            throw APIError(.badRequest, "\(error)")
        }
        guard !overrides.isEmpty else { throw APIError(.badRequest, "give at least one set or disable") }
        if grant.app != nil {
            let registry = herald.registryState.registry
            for override in overrides {
                if let refusal = AccessRules.refusal(reading: registry.trigger(override.triggerID)?.appID, by: grant) {
                    throw APIError(.forbidden, refusal)
                }
            }
        }
        let directory = self.directory, through = at, changes = overrides
        return try await blocking {
            var result: WhatIfResult
            do {
                result = try directory.openReader().whatIf(changes, through: through)
            } catch let error as WhatIfError {
                throw APIError(.unprocessableContent, "\(error)")
            }
            if let app = grant.app {
                result.recorded = result.recorded.filter { $0.appID == app }
                result.whatIf = result.whatIf.filter { $0.appID == app }
            }
            var out = JSONOutput()
            out.beginObject()
            out.key("skipped"); out.int(result.skipped)
            out.key("diff"); out.string(result.diffText)
            out.key("deliveries")
            out.beginArray()
            for delivery in result.whatIf { CanonicalOutput.append(delivery, to: &out) }
            out.endArray()
            out.endObject()
            out.newline()
            return jsonResponse(out.bytes)
        }
    }

    // MARK: - Helpers

    /// The request body, at most ``ServeOptions/maxBodyBytes`` (413 beyond).
    func collect(_ request: Request) async throws -> [UInt8] {
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > options.maxBodyBytes {
            throw APIError(.contentTooLarge, "the body is \(length) bytes; at most \(options.maxBodyBytes) are taken")
        }
        do {
            let buffer = try await request.body.collect(upTo: options.maxBodyBytes)
            return Array(buffer.readableBytesView)
        } catch let error as HTTPError where error.status == .contentTooLarge {
            throw APIError(.contentTooLarge, "the body is larger than the \(options.maxBodyBytes) bytes taken")
        }
    }

    /// The app a read is limited to: the one asked for, which must be the token's if it is
    /// bound to one; else the token's.
    func scopedApp(_ asked: HeraldID?, _ grant: Grant) throws -> HeraldID? {
        guard let bound = grant.app else { return asked }
        if let asked, asked != bound { throw APIError(.forbidden, "the token is bound to app \(bound), not app \(asked)") }
        return bound
    }

    static func id(_ query: FlatDictionary<Substring, Substring>, _ name: String) throws -> HeraldID? {
        guard let text = query[Substring(name)] else { return nil }
        guard let id = HeraldID(String(text)) else { throw APIError(.badRequest, "\(name) '\(text)' is not an id") }
        return id
    }

    static func position(_ query: FlatDictionary<Substring, Substring>, _ name: String) throws -> UInt64? {
        guard let text = query[Substring(name)] else { return nil }
        guard let value = UInt64(text), value <= UInt64(Int64.max) else {
            throw APIError(.badRequest, "\(name) '\(text)' is not a log position (0…\(Int64.max))")
        }
        return value
    }

    static func int(_ query: FlatDictionary<Substring, Substring>, _ name: String, default value: Int, in range: ClosedRange<Int>) throws -> Int {
        guard let text = query[Substring(name)] else { return value }
        guard let number = Int(text), range.contains(number) else {
            throw APIError(.badRequest, "\(name) '\(text)' is not a number in \(range.lowerBound)…\(range.upperBound)")
        }
        return number
    }
}

/// The body of `POST /v1/deliveries/redrive` and `/cancel`: a JSON object of selection
/// filters (every field optional; an empty body selects everything), each checked.
struct SelectionBody {
    var app, trigger, script: HeraldID?
    var status: DeliveryStatus?
    var errorContains, reason: String?
    var from, to: UInt64?
    var limit: Int?
    var dryRun = false

    init(_ body: [UInt8]) throws {
        guard !body.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) else { return }
        guard let object = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] else {
            throw APIError(.badRequest, "the body is not a JSON object of selection filters")
        }
        // A field is absent or has its type: null is not a value of any of them.
        for (key, value) in object where value is NSNull { throw APIError(.badRequest, "\(key) must not be null") }
        func text(_ key: String) throws -> String? {
            guard let value = object[key] else { return nil }
            guard let string = value as? String else { throw APIError(.badRequest, "\(key) must be a string") }
            return string
        }
        func id(_ key: String) throws -> HeraldID? {
            guard let string = try text(key) else { return nil }
            guard let id = HeraldID(string) else { throw APIError(.badRequest, "\(key) '\(string)' is not an id") }
            return id
        }
        func number(_ key: String, _ range: ClosedRange<UInt64>) throws -> UInt64? {
            try object[key].map { try wholeNumber($0, key, range) }
        }
        for key in object.keys where !["app", "trigger", "script", "status", "error_contains", "from", "to", "limit", "reason", "dry_run"].contains(key) {
            throw APIError(.badRequest, "'\(key)' is not a selection filter")
        }
        app = try id("app")
        trigger = try id("trigger")
        script = try id("script")
        if let name = try text("status") {
            guard let value = DeliveryStatus(name: name) else { throw APIError(.badRequest, "status '\(name)' is not a delivery status") }
            status = value
        }
        errorContains = try text("error_contains")
        reason = try text("reason")
        from = try number("from", 0...UInt64(Int64.max))
        to = try number("to", 0...UInt64(Int64.max))
        limit = try number("limit", 1...UInt64(Int32.max)).map { Int($0) }
        if let value = object["dry_run"] {
            guard type(of: value) != NSNumber.self, let flag = value as? Bool else { throw APIError(.badRequest, "dry_run must be true or false") }
            dryRun = flag
        }
    }
}

/// A JSON number of a request body that must be whole and within `range` (400 otherwise).
func wholeNumber(_ value: Any, _ key: String, _ range: ClosedRange<UInt64>) throws -> UInt64 {
    // A plain NSNumber: JSONSerialization gives booleans and numbers too long for a Double (an
    // NSDecimalNumber) subclasses of their own.
    guard let number = value as? NSNumber, type(of: value) == NSNumber.self, number.doubleValue.rounded() == number.doubleValue,
          number.doubleValue >= 0, number.doubleValue < 0x1p64, range.contains(number.uint64Value) else {
        throw APIError(.badRequest, "\(key) must be a whole number in \(range.lowerBound)…\(range.upperBound)")
    }
    return number.uint64Value
}
