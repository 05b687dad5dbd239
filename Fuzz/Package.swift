// swift-tools-version:6.2
// libFuzzer targets for Herald's decoders, kept out of the main package's build (a fuzz entry
// point needs `-sanitize=fuzzer`, which a normal `swift build` must not get). Build and run
// them with `Tools/fuzz` (docs/FUZZING.md): it builds this package with
// `-Xswiftc -sanitize=fuzzer,address` into `.build-fuzz`.
import PackageDescription

let herald: Target.Dependency = .product(name: "_HeraldFuzzing", package: "Herald")
/// The log alone: targets that need no HeraldCore link without it (fewer coverage counters
/// for libFuzzer to scan after each input).
let heraldLog: Target.Dependency = .product(name: "_HeraldLogFuzzing", package: "Herald")

let package = Package(
    name: "HeraldFuzz",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "Herald", path: ".."),
    ],
    targets: [
        // libFuzzer's `LLVMFuzzerRunDriver`, declared for Swift.
        .systemLibrary(name: "CLibFuzzer"),
        // The libFuzzer driver call, the failure check, the sample log the index target reads.
        .target(name: "FuzzSupport", dependencies: ["CLibFuzzer", heraldLog]),
        // One executable per fuzz target; each calls `runFuzzer` with its test function.
        .executableTarget(name: "FuzzJSONLine", dependencies: ["FuzzSupport", herald]),
        .executableTarget(name: "FuzzBinaryRecord", dependencies: ["FuzzSupport", herald]),
        .executableTarget(name: "FuzzSegment", dependencies: ["FuzzSupport", heraldLog]),
        .executableTarget(name: "FuzzBlockIndex", dependencies: ["FuzzSupport", heraldLog]),
        .executableTarget(name: "FuzzEngineSnapshot", dependencies: ["FuzzSupport", herald]),
        // Writes the seed corpora from the fixtures (not a fuzz target: runs once, then exits).
        .executableTarget(name: "FuzzSeeds", dependencies: ["FuzzSupport", herald]),
    ],
    swiftLanguageModes: [.v6]
)
