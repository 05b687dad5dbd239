import Foundation
import Herald
import HeraldLog
import Testing

/// The `herald` binary against damaged and crashed logs: acknowledged records are never cut
/// without the operator's word, and an import killed inside its commit leaves all or nothing.
@Suite struct LogDamageCLITests {

    /// Runs `herald` (or `binary`) with `arguments` and extra environment to the end.
    static func herald(_ arguments: [String], environment: [String: String] = [:], binary: String = heraldBinary) async throws -> ProgramRun {
        try await runProgram(binary, arguments, environment: environment)
    }

    static let admin = "a0000000-0000-4000-8000-000000000001", app = "b0000000-0000-4000-8000-000000000001"

    /// An import of `count` lines: an admin user, an app, then KV inserts.
    static func importFile(_ path: String, count: Int) throws {
        var text = #"{"type":"admin_user.created","admin_user_id":"\#(admin)","email":"ops@example.com"}"# + "\n"
        text += #"{"type":"app.created","app_id":"\#(app)","name":"shop"}"# + "\n"
        for i in 0..<(count - 2) {
            text += #"{"type":"kv.insert","app_id":"\#(app)","collection":"users","key":"k\#(i)","value":{"i":\#(i),"name":"user \#(i)","plan":"pro"}}"# + "\n"
        }
        try text.write(toFile: path, atomically: true, encoding: .utf8)
    }

    /// Block offsets and headers' positions of a segment, walking its headers.
    static func blocks(_ bytes: [UInt8]) -> [(offset: Int, base: UInt64, count: Int, continues: Bool)] {
        var out: [(Int, UInt64, Int, Bool)] = []
        var at = 0
        while at + 64 <= bytes.count, bytes[at] == 0x5B, bytes[at + 1] == 0x2A, bytes[at + 2] == 0x4D, bytes[at + 3] == 0x18 {
            func u32(_ o: Int) -> Int { Int(bytes[at + o]) | Int(bytes[at + o + 1]) << 8 | Int(bytes[at + o + 2]) << 16 | Int(bytes[at + o + 3]) << 24 }
            let base = UInt64(u32(16)) | UInt64(u32(20)) << 32
            out.append((at, base, u32(24), bytes[at + 15] & 1 != 0))
            at += 64 + u32(32)
        }
        return out
    }

    static let extraApp = #"{"type":"app.created","app_id":"b0000000-0000-4000-8000-0000000000ff","name":"x"}"#

    /// The issue's case: one flipped bit in the last block of a closed, synced log (an
    /// `herald append` of its own) — refused by every writer and reader, naming the position,
    /// until `herald repair --accept-loss` quarantines it and says so; only then is the
    /// position used again.
    @Test func aBitFlipInTheLastBlockOfAClosedLogIsRefusedUntilTheLossIsAccepted() async throws {
        guard heraldIsBuilt() else { return }
        try await withTemporaryDirectory { path in
            let data = path + "/data", input = path + "/in.jsonl"
            try Self.importFile(input, count: 20_000)
            #expect(try await Self.herald(["import", "--data", data, input]).status == 0)
            for i in 1...3 {
                let record = #"{"type":"kv.insert","app_id":"\#(Self.app)","collection":"c","key":"late\#(i)","value":\#(i)}"#
                #expect(try await Self.herald(["append", "--data", data, record]).stdout == "\(20_000 + i)\n")
            }
            let segment = data + "/log/00000000000000000001.log"
            let original = Array(try Data(contentsOf: URL(fileURLWithPath: segment)))
            let last = try #require(Self.blocks(original).last)
            #expect(last.base == 20_003 && last.count == 1)
            var damaged = original
            damaged[last.offset + 64 + (original.count - last.offset - 64) / 2] ^= 0x10
            try Data(damaged).write(to: URL(fileURLWithPath: segment))

            // Every writer refuses, naming the acknowledged position; nothing changes.
            let append = try await Self.herald(["append", "--data", data, Self.extraApp])
            #expect(append.status != 0)
            #expect(append.stderr.contains("Position 20003 was acknowledged and is damaged"), "\(append.stderr)")
            #expect(append.stderr.contains("herald repair --accept-loss"))
            #expect(Array(try Data(contentsOf: URL(fileURLWithPath: segment))) == damaged, "a refused writer changed the segment")
            // Every reader agrees.
            for command in [["dump"], ["verify"], ["deliveries", "--format", "jsonl"], ["stats"]] {
                let run = try await Self.herald(command + ["--data", data])
                #expect(run.status != 0, "\(command) exited 0 on acknowledged damage")
                #expect(run.stderr.contains("20003"), "\(command): \(run.stderr)")
            }
            let refusedRepair = try await Self.herald(["repair", "--data", data])
            #expect(refusedRepair.status != 0 && refusedRepair.stderr.contains("--accept-loss"))
            #expect(Array(try Data(contentsOf: URL(fileURLWithPath: segment))) == damaged)

            // The operator accepts the loss: the bytes go to quarantine, on record.
            let repair = try await Self.herald(["repair", "--data", data, "--accept-loss"])
            #expect(repair.status == 0, "\(repair.stderr)")
            #expect(repair.stdout.contains("holding position 20003, which was acknowledged (block checksum mismatch); the loss was accepted"), "\(repair.stdout)")
            let quarantine = data + "/log/quarantine/00000000000000000001.log.\(last.offset).cut"
            #expect(Array(try Data(contentsOf: URL(fileURLWithPath: quarantine))) == Array(damaged[last.offset...]))
            let journal = try String(contentsOfFile: data + "/log/recovery.jsonl", encoding: .utf8)
            #expect(journal.contains(#""first_position":20003,"last_position":20003,"acknowledged_loss":true"#), "\(journal)")
            #expect(try await Self.herald(["verify", "--data", data]).status == 0)
            #expect(try await Self.herald(["dump", "--data", data]).stdout.split(separator: "\n").count == 20_002)
            // The position comes back only now, after the recorded, accepted loss.
            let next = try await Self.herald(["append", "--data", data, Self.extraApp])
            #expect(next.stdout == "20003\n")
        }
    }

    /// Junk after the last block (a torn write past the durable watermark): every reader
    /// reads the whole log, exit 0, and says on stderr what the tail hides; the next writer
    /// cuts it into quarantine and says so; nothing acknowledged is touched.
    @Test func aTornTailIsAWarningForReadersAndACutForTheWriter() async throws {
        guard heraldIsBuilt() else { return }
        try await withTemporaryDirectory { path in
            let data = path + "/data", input = path + "/in.jsonl"
            try Self.importFile(input, count: 50)
            #expect(try await Self.herald(["import", "--data", data, input]).status == 0)
            let segment = data + "/log/00000000000000000001.log"
            let original = Array(try Data(contentsOf: URL(fileURLWithPath: segment)))
            try Data(original + Array("not a block at all".utf8)).write(to: URL(fileURLWithPath: segment))
            for command in [["dump"], ["deliveries", "--format", "jsonl"], ["verify"]] {
                let run = try await Self.herald(command + ["--data", data])
                #expect(run.status == 0, "\(command): \(run.stderr)")
                #expect(run.stderr.contains("warning: 00000000000000000001.log ends in a torn tail at byte offset \(original.count)"), "\(command): \(run.stderr)")
                #expect(run.stderr.contains("positions from 51 on"), "\(command): \(run.stderr)")
            }
            #expect(try await Self.herald(["dump", "--data", data]).stdout.split(separator: "\n").count == 50)
            let append = try await Self.herald(["append", "--data", data, Self.extraApp])
            #expect(append.stdout == "51\n", "\(append.stderr)")
            #expect(append.stderr.contains("Recovery cut 18 bytes of a torn tail"), "\(append.stderr)")
            let quarantine = data + "/log/quarantine/00000000000000000001.log.\(original.count).cut"
            #expect(Array(try Data(contentsOf: URL(fileURLWithPath: quarantine))) == Array("not a block at all".utf8))
            let verify = try await Self.herald(["verify", "--data", data])
            #expect(verify.status == 0 && !verify.stderr.contains("warning"), "\(verify.stderr)")
        }
    }

    /// The last block of an import is its closing block: damaged, it is refused like any
    /// acknowledged record; an accepted loss then cuts the whole import (an import is in the
    /// log whole or not at all), which can be imported again.
    @Test func aDamagedImportIsCutWholeWhenTheLossIsAccepted() async throws {
        guard heraldIsBuilt() else { return }
        try await withTemporaryDirectory { path in
            let data = path + "/data", first = path + "/first.jsonl", input = path + "/in.jsonl"
            try Self.importFile(first, count: 2)  // admin user and app, their own import
            let body = try String(contentsOfFile: first, encoding: .utf8)
            try Self.importFile(input, count: 20_002)
            let lines = try String(contentsOfFile: input, encoding: .utf8)
            try String(lines.dropFirst(body.count)).write(toFile: input, atomically: true, encoding: .utf8)
            #expect(try await Self.herald(["import", "--data", data, first]).status == 0)
            #expect(try await Self.herald(["import", "--data", data, input]).status == 0)
            let segment = data + "/log/00000000000000000001.log"
            let original = Array(try Data(contentsOf: URL(fileURLWithPath: segment)))
            let blocks = Self.blocks(original)
            let last = try #require(blocks.last)
            #expect(blocks.count > 2 && blocks.dropFirst().dropLast().allSatisfy(\.continues) && !last.continues)
            var damaged = original
            damaged[last.offset + 64 + (original.count - last.offset - 64) / 2] ^= 0x10
            try Data(damaged).write(to: URL(fileURLWithPath: segment))
            let append = try await Self.herald(["append", "--data", data, Self.extraApp])
            #expect(append.stderr.contains("Positions \(last.base)…20002 were acknowledged and are damaged"), "\(append.stderr)")
            let repair = try await Self.herald(["repair", "--data", data, "--accept-loss"])
            #expect(repair.status == 0, "\(repair.stderr)")
            #expect(repair.stdout.contains("holding positions 3…20002"), "\(repair.stdout)")
            let quarantine = data + "/log/quarantine/00000000000000000001.log.\(blocks[1].offset).cut"
            #expect(Array(try Data(contentsOf: URL(fileURLWithPath: quarantine))) == Array(damaged[blocks[1].offset...]))
            // Nothing of the import is left, so it goes in again, whole.
            #expect(try await Self.herald(["dump", "--data", data]).stdout.split(separator: "\n").count == 2)
            #expect(try await Self.herald(["import", "--data", data, input]).status == 0)
            #expect(try await Self.herald(["verify", "--data", data]).status == 0)
            #expect(try await Self.herald(["dump", "--data", data]).stdout.split(separator: "\n").count == 20_002)
        }
    }

    /// `herald import` of 100,000 lines killed with SIGKILL at 30 points inside its commit
    /// (right before the 6th, 8th, … 64th write of the log's files: the commit's block writes):
    /// afterwards every reader sees all of the import or none of it, the next writer removes
    /// a partial one into quarantine, and the import can simply be run again.
    @Test func sigkillInsideAnImportCommitLeavesAllOrNothing() async throws {
        guard heraldIsBuilt() else { return }
        try await withTemporaryDirectory { path in
            let input = path + "/in.jsonl"
            try Self.importFile(input, count: 100_000)
            var partialOnDisk = 0
            for (round, point) in stride(from: 6, through: 64, by: 2).enumerated() {
                let data = path + "/data\(point)"
                let run = try await Self.herald(["import", "--data", data, input], environment: ["HERALD_TEST_KILL_AT": "write:\(point)"])
                let context = "killed before write \(point)"
                #expect(run.killed || run.status == 0, "\(context): \(run.stderr)")
                let bytes = (try? Data(contentsOf: URL(fileURLWithPath: data + "/log/00000000000000000001.log"))).map(Array.init) ?? []
                let onDisk = Self.blocks(bytes)
                if run.killed, let tail = onDisk.last, tail.continues { partialOnDisk += 1 }
                // Readers: all or nothing.
                let directory = DataDirectory(path: data)
                let seen = try directory.openReader().lastPosition
                #expect(seen == 0 || seen == 100_000, "\(context): a reader sees \(seen) of 100000 records")
                #expect(run.killed || seen == 100_000, "\(context)")
                // The next writer agrees and removes a partial import into quarantine.
                let writer = try directory.openWriter()
                #expect(writer.lastPosition == seen, "\(context)")
                if seen == 0, let tail = onDisk.last, tail.continues {
                    let cut = try #require(writer.recovery.truncation, "\(context)")
                    #expect(cut.kind == .uncommittedAppend || cut.kind == .tornTail)
                    #expect(!cut.acknowledgedLoss && cut.quarantine != nil)
                }
                try writer.close()
                // Run again where nothing survived: the whole import goes in, once.
                if seen == 0, round % 15 == 0 {
                    let again = try await Self.herald(["import", "--data", data, input])
                    #expect(again.status == 0, "\(context): the rerun failed: \(again.stderr)")
                    #expect(try directory.openReader().lastPosition == 100_000)
                }
                try? FileManager.default.removeItem(atPath: data)
            }
            // The points fall inside the commit: most kills leave a partial import on disk.
            #expect(partialOnDisk >= 20, "only \(partialOnDisk) of 30 kills left a partial import on disk")
        }
    }
}
