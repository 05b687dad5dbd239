import CCRC32C

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78): the SSE4.2 `crc32` instruction when
/// the CPU has it (C target CCRC32C, checked once with cpuid), else slicing-by-8 in portable
/// Swift. Both give the same values.
///
/// `CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283`.
public enum CRC32C {
    /// True when `update` uses the hardware instruction.
    public static let hardwareAccelerated: Bool = herald_crc32c_hw_available() != 0

    /// 8 tables of 256 entries, table k at `k * 256`.
    static let table: [UInt32] = {
        var t = [UInt32](repeating: 0, count: 8 * 256)
        for i in 0..<256 {
            var c = UInt32(i)
            for _ in 0..<8 { c = (c & 1) != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
            t[i] = c
        }
        for k in 1..<8 {
            for i in 0..<256 {
                let prev = t[(k - 1) * 256 + i]
                t[k * 256 + i] = (prev >> 8) ^ t[Int(prev & 0xFF)]
            }
        }
        return t
    }()

    /// The CRC-32C of `bytes`.
    public static func checksum(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { finish(update(start, $0)) }
    }

    /// The CRC-32C of `bytes`.
    public static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        finish(update(start, bytes))
    }

    /// Initial running state; feed with `update`, close with `finish`.
    static let start: UInt32 = 0xFFFF_FFFF
    /// The checksum of a running state.
    @inline(__always) static func finish(_ state: UInt32) -> UInt32 { state ^ 0xFFFF_FFFF }

    /// Feeds `bytes` into a running state.
    static func update(_ state: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
        guard let base = bytes.baseAddress else { return state }
        if hardwareAccelerated { return herald_crc32c_hw_update(state, base, bytes.count) }
        return softwareUpdate(state, bytes)
    }

    /// The portable slicing-by-8 implementation (used when SSE4.2 is missing; tests compare both).
    static func softwareUpdate(_ state: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
        guard let base = bytes.baseAddress else { return state }
        return table.withUnsafeBufferPointer { tp -> UInt32 in
            guard let t = tp.baseAddress else { return state }
            var crc = state
            var p = base
            var n = bytes.count
            while n >= 8 {
                let lo = UInt32(littleEndian: p.loadUnaligned(as: UInt32.self)) ^ crc
                let hi = UInt32(littleEndian: (p + 4).loadUnaligned(as: UInt32.self))
                crc = t[7 * 256 + Int(lo & 0xFF)] ^ t[6 * 256 + Int((lo >> 8) & 0xFF)]
                    ^ t[5 * 256 + Int((lo >> 16) & 0xFF)] ^ t[4 * 256 + Int(lo >> 24)]
                    ^ t[3 * 256 + Int(hi & 0xFF)] ^ t[2 * 256 + Int((hi >> 8) & 0xFF)]
                    ^ t[1 * 256 + Int((hi >> 16) & 0xFF)] ^ t[Int(hi >> 24)]
                p += 8
                n -= 8
            }
            while n > 0 {
                crc = (crc >> 8) ^ t[Int((crc ^ UInt32(p.load(as: UInt8.self))) & 0xFF)]
                p += 1
                n -= 1
            }
            return crc
        }
    }
}

