// Fuzz target: the binary record codec (a log payload, Schema/interchange.md "Binary encoding").
//
// The input is one payload. `RecordBinaryCodec.decode` either rejects it or returns a body;
// `isValid` must give the same verdict; every decoding path (`decodeRecord` checked and
// unchecked, sharing the buffer or not) must give the same body. A decoded body must encode
// to bytes that decode to it again, and — as decoding accepts only the canonical form (minimal
// varints, 0/1 booleans, no stray mask bits, nothing after the last field) — to the input.
import FuzzSupport
import HeraldCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzBinaryRecord(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = Array(fuzzInput(data, size))
    let decoded: Result<RecordBody, RecordError> = input.withUnsafeBytes { raw in
        do throws(RecordError) { return .success(try RecordBinaryCodec.decode(raw)) } catch { return .failure(error) }
    }
    let valid = input.withUnsafeBytes { RecordBinaryCodec.isValid($0) }
    guard case .success(let body) = decoded else {
        expect(!valid, "isValid accepts a payload that decode rejects")
        return 0
    }
    expect(valid, "isValid rejects a payload that decode accepts")
    input.withUnsafeBytes { raw in
        for checked in [false, true] {
            for sharing in [false, true] {
                do throws(RecordError) {
                    let record = sharing
                        ? try RecordBinaryCodec.decodeRecord(ts: 7, raw, checked: checked, sharing: input, at: 0)
                        : try RecordBinaryCodec.decodeRecord(ts: 7, raw, checked: checked)
                    expect(record.ts == 7 && record.body == body, "decodeRecord(checked: \(checked), sharing: \(sharing)) gives another body")
                } catch {
                    expect(false, "decodeRecord(checked: \(checked), sharing: \(sharing)) rejects what decode accepts: \(error)")
                }
            }
        }
    }
    let encoded = RecordBinaryCodec.encode(body)
    do throws(RecordError) {
        expect(try RecordBinaryCodec.decode(encoded) == body, "encode→decode changes the body")
    } catch {
        expect(false, "the encoding of a decoded body is rejected: \(error)")
    }
    expect(encoded == input, "a decoded payload encodes to other bytes (decode accepted a non-canonical form)")
    return 0
}

runFuzzer(fuzzBinaryRecord)
