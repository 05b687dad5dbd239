@testable import HeraldCore
import Testing

/// Each enum's one table of wire names: every case parses back from its name, the decoders'
/// lookups find every name (and nothing else), and the error messages list the names.
@Suite struct WireNameTests {
    func roundTrips<T: WireNamed & Equatable>(_ type: T.Type, _ expected: [String]) {
        #expect(T.wireCases.map(\.wireName) == expected)
        for value in T.wireCases {
            #expect(T(name: value.wireName) == value)
            #expect(value.description == value.wireName)
        }
        #expect(T(name: "") == nil)
        #expect(T(name: (expected.first ?? "") + " ") == nil)
    }

    @Test func everyEnumParsesItsOwnNames() {
        roundTrips(RecordType.self, ["admin_user.created", "admin_user.deleted", "app.created", "app.deleted",
                                     "script.registered", "script.deleted", "trigger.registered", "trigger.updated",
                                     "trigger.deleted", "kv.insert", "kv.update", "kv.delete", "delivery.attempted",
                                     "delivery.redriven", "delivery.cancelled", "delivery.invoked"])
        roundTrips(KVOp.self, ["insert", "update", "delete"])
        roundTrips(Backoff.self, ["exponential", "linear", "constant"])
        roundTrips(SourceKind.self, ["kv", "dead_letter", "http", "manual"])
        roundTrips(TriggerKind.self, ["kv", "dead_letter"])
        roundTrips(DispatchMode.self, ["async", "sync"])
        roundTrips(AttemptOutcome.self, ["ok", "error"])
        roundTrips(DeliveryStatus.self, ["pending", "succeeded", "dead", "cancelled"])
    }

    @Test func theDecodersLookupsFindEveryNameAndNothingElse() {
        func find<T>(_ text: String, _ lookup: (UnsafeBufferPointer<UInt8>) -> T?) -> T? {
            Array(text.utf8).withUnsafeBufferPointer(lookup)
        }
        for field in JSONField.allCases {
            #expect(find(field.jsonName, JSONField.match) == field)
            #expect(find(field.jsonName + "x", JSONField.match) == nil)
            #expect(find(String(field.jsonName.dropLast()), JSONField.match) == nil)
        }
        for type in RecordType.wireCases {
            #expect(find(type.wireName, JSONField.recordType) == type)
            #expect(find(type.wireName.uppercased(), JSONField.recordType) == nil)
        }
        #expect(find("", JSONField.match) == nil)
        #expect(find(String(repeating: "a", count: 300), JSONField.recordType) == nil)
    }

    @Test func errorMessagesListTheNames() throws {
        #expect(Backoff.wireNamesPhrase() == "'exponential', 'linear' or 'constant'")
        #expect(SourceKind.wireNamesPhrase(orNull: true) == "null, 'kv', 'dead_letter', 'http' or 'manual'")
        #expect(AttemptOutcome.wireNamesPhrase() == "'ok' or 'error'")
        let decoder = RecordJSONDecoder()
        do {
            _ = try decoder.decode(line: #"{"type":"delivery.attempted","source_position":1,"trigger_id":"00000000-0000-4000-8000-000000000001","attempt":1,"outcome":"fine","duration_ms":1}"#)
            Issue.record("an unknown outcome was accepted")
        } catch {
            #expect(error.description.contains("outcome"))
            #expect(error.description.contains("must be 'ok' or 'error', not 'fine'"), "\(error)")
        }
    }
}
