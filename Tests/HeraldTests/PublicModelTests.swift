import Foundation
import Herald
import HeraldCore
import Testing

/// The conveniences of the public models: `Codable` in the canonical spellings, `HeraldID` ↔
/// `UUID`, time spans as `Duration`.
@Suite struct PublicModelTests {
    static let trigger = HeraldID(high: 0xd000_0000_0000_4000, low: 0x8000_0000_0000_0001)
    static let delivery = Delivery(
        id: DeliveryID(sourcePosition: 7, triggerID: trigger), appID: HeraldID(high: 0xb000_0000_0000_4000, low: 1),
        scriptID: HeraldID(high: 0xc000_0000_0000_4000, low: 2), sourceKind: .kv, depth: 0,
        retry: RetryConfig(maxAttempts: 3, backoff: .exponential, baseMs: 1000), triggerRank: 5, status: .dead,
        attempts: 3, dueAt: nil, lastError: "smtp down", finishedAt: 12, budgetBase: 0)

    @Test func aDeliveryEncodesInTheCanonicalSpellingsAndDecodesBack() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let text = String(decoding: try encoder.encode(Self.delivery), as: UTF8.self)
        #expect(text == #"{"app_id":"b0000000-0000-4000-0000-000000000001","attempts":3,"budget_base":0,"depth":0,"due_at":null,"finished_at":12,"last_error":"smtp down","retry":{"backoff":"exponential","base_ms":1000,"max_attempts":3},"script_id":"c0000000-0000-4000-0000-000000000002","source_kind":"kv","source_position":7,"status":"dead","trigger_id":"d0000000-0000-4000-8000-000000000001","trigger_rank":5}"#)
        #expect(try JSONDecoder().decode(Delivery.self, from: Data(text.utf8)) == Self.delivery)
        #expect(try JSONDecoder().decode(DeliveryID.self, from: Data(#""7:d0000000-0000-4000-8000-000000000001""#.utf8)) == Self.delivery.id)
    }

    @Test func decodingNamesTheFieldItRefuses() throws {
        let good = String(decoding: try JSONEncoder().encode(Self.delivery), as: UTF8.self)
        let cases: [(String, String, String)] = [
            (#""status":"dead""#, #""status":"gone""#, "status"),
            (#""trigger_id":"d0000000-0000-4000-8000-000000000001""#, #""trigger_id":"not-an-id""#, "trigger_id"),
            (#""max_attempts":3"#, #""max_attempts":0"#, "max_attempts"),
            (#""finished_at":12"#, #""finished_at":null"#, "status"),
        ]
        for (from, to, field) in cases {
            #expect(good.contains(from), "\(from)")
            do {
                _ = try JSONDecoder().decode(Delivery.self, from: Data(good.replacingOccurrences(of: from, with: to).utf8))
                Issue.record("\(to) was accepted")
            } catch let DecodingError.dataCorrupted(context) {
                #expect(context.codingPath.last?.stringValue == field, "\(to): \(context)")
            }
        }
    }

    @Test func idsConvertToAndFromUUID() throws {
        let uuid = try #require(UUID(uuidString: "D0000000-0000-4000-8000-0000000000FF"))
        let id = HeraldID(uuid)
        #expect(id.description == "d0000000-0000-4000-8000-0000000000ff" && id.uuid == uuid)
        let random = UUID()
        #expect(HeraldID(random).uuid == random && HeraldID(random).description == random.uuidString.lowercased())
    }

    @Test func timeSpansAreDurations() {
        var options = HeraldOptions()
        options.attemptTimeout = .seconds(2) + .microseconds(1500)
        #expect(options.attemptTimeoutMs == 2001 && options.attemptTimeout == .milliseconds(2001))
        options.attemptTimeout = .zero
        #expect(options.attemptTimeoutMs == 1)
        options.projectionInterval = .seconds(Int64.max)
        #expect(options.projectionIntervalMs == .max)
        options.projectionInterval = .milliseconds(250)
        #expect(options.projectionIntervalMs == 250)
    }
}
