// Fuzz target: the engine snapshot decoder (`Dispatcher(snapshotBytes:)`, the `engine_snapshot`
// value of the projection that a restart reads instead of the rows; it holds the registry, the
// redrivable deliveries and the `PendingDeliveries` snapshot).
//
// The input is a snapshot without its checksum: the target appends the checksum of the input,
// so mutations reach every field check instead of stopping at the checksum. Then:
// 1. decoding either refuses the bytes with an offset inside them, or returns a state;
// 2. a decoded state is sound: its pending deliveries come in strictly increasing canonical
//    order, each is found by its id, and the count agrees;
// 3. it encodes to bytes that decode to the same state, and those bytes are a fixed point
//    (encode → decode → encode gives them again);
// 4. the input with its checksum damaged (one bit) is refused.
// Errors are fine; a trap, a leak, a hang or a broken property is not.
import FuzzSupport
@testable import HeraldCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzEngineSnapshot(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let body = Array(fuzzInput(data, size))
    var bytes = body
    withUnsafeBytes(of: PendingDeliveries.checksum(body[...]).littleEndian) { bytes.append(contentsOf: $0) }

    let state: Dispatcher
    do {
        state = try Dispatcher(snapshotBytes: bytes)
    } catch {
        expect(error.offset >= 0 && error.offset <= bytes.count, "a refusal at offset \(error.offset) of \(bytes.count) bytes")
        return 0
    }
    let pending = state.pending
    let values = pending.values
    expect(values.count == pending.count, "\(values.count) deliveries, count \(pending.count)")
    for (index, delivery) in values.enumerated() {
        if index > 0 {
            expect(values[index - 1].orderKey < delivery.orderKey, "delivery \(index) is not after delivery \(index - 1)")
        }
        expect(pending[delivery.id] == delivery, "delivery \(delivery.id) is not found by its id")
    }
    let encoded = state.snapshotBytes()
    do {
        let again = try Dispatcher(snapshotBytes: encoded)
        expect(again.pending == pending, "encode → decode gives another pending set")
        expect(again.snapshotBytes() == encoded, "the encoding of a decoded snapshot is not a fixed point")
    } catch {
        expect(false, "the encoding of a decoded snapshot is refused: \(error)")
    }
    var damaged = bytes
    damaged[damaged.count - 1 - Int(size % 8)] ^= 0x01
    expect((try? Dispatcher(snapshotBytes: damaged)) == nil, "a snapshot with a damaged checksum is accepted")
    return 0
}

runFuzzer(fuzzEngineSnapshot)
