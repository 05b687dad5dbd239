import Foundation
@testable import HeraldTesting
import Testing

/// HeraldTesting's writes stay inside their directory.
@Suite struct FileIOTests {
    @Test(arguments: ["../escaped.txt", "expected/../../escaped.txt", "/tmp/escaped.txt", "expected//x", "./x", ""])
    func aPathLeavingTheDirectoryIsRefused(relative: String) async throws {
        try await withTemporaryDirectory { path in
            let root = path + "/fixture"
            #expect(throws: FixtureError(path: root + "/" + relative,
                                         reason: "is not a plain relative path inside \(root); refusing to write outside that directory")) {
                try FileIO.write(Array("x".utf8), to: relative, inside: root)
            }
            #expect(!FileManager.default.fileExists(atPath: path + "/escaped.txt"))
            #expect(!FileManager.default.fileExists(atPath: root), "nothing was created")
        }
    }

    @Test func aPlainPathIsWrittenWithItsDirectories() async throws {
        try await withTemporaryDirectory { path in
            try FileIO.write(Array("hello\n".utf8), to: "expected/explain/1.txt", inside: path + "/fixture")
            #expect(try String(contentsOfFile: path + "/fixture/expected/explain/1.txt", encoding: .utf8) == "hello\n")
        }
    }
}
