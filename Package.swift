// swift-tools-version:6.2
import PackageDescription

let package = Package(
    name: "Herald",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "Herald", targets: ["Herald"]),
        .library(name: "HeraldTesting", targets: ["HeraldTesting"]),
        // The log on NATS JetStream (JetStreamLog, JetStreamRecordLog), for DataDirectory.externalLog.
        .library(name: "HeraldNATS", targets: ["HeraldNATS"]),
        .executable(name: "herald", targets: ["herald"]),
        .executable(name: "herald-bench", targets: ["herald-bench"]),
        // For Fuzz/Package.swift (libFuzzer targets, built apart with sanitizers): a package
        // reaches another's modules only through a product. Underscored: not for users.
        .library(name: "_HeraldFuzzing", targets: ["HeraldCore", "HeraldLog"]),
        // The log alone, for the fuzz targets that read and write logs: a binary without
        // HeraldCore has a fraction of the coverage counters libFuzzer scans after each input.
        .library(name: "_HeraldLogFuzzing", targets: ["HeraldLog"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.1.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.0.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.0"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
    ],
    targets: [
        // C libraries, seen only through these wrappers.
        .systemLibrary(name: "CLZ4", pkgConfig: "liblz4", providers: [.apt(["liblz4-dev"])]),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "CLibPQ", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),
        .systemLibrary(name: "CNATS", pkgConfig: "libnats", providers: [.apt(["libnats-dev"])]),
        // SSE4.2 CRC-32C behind a cpuid check (HeraldLog falls back to its table otherwise).
        .target(name: "CCRC32C"),
        // Threads for the storage shells' pipelines: a joinable pthread and a condition lock.
        .target(name: "HeraldThreads"),

        // Pure core: records, codecs, validation, matching, reducers. No I/O.
        .target(name: "HeraldCore"),
        // The segment log: blocks, LZ4 frames, CRC32C, recovery, readers.
        .target(name: "HeraldLog", dependencies: ["CLZ4", "CCRC32C", "HeraldThreads"]),
        // SQLite projection (Layout E + deliveries).
        .target(name: "HeraldStore", dependencies: ["HeraldCore", "HeraldThreads", "CSQLite"]),
        // The projection in PostgreSQL (libpq): the seed's DDL as it is, the same rows as SQLite.
        .target(name: "HeraldPostgres", dependencies: ["HeraldCore", "HeraldStore", "CLibPQ"]),
        // The log on NATS JetStream (libnats): one Herald block per message.
        .target(name: "HeraldNATS", dependencies: ["HeraldCore", "HeraldLog", "HeraldThreads", "CNATS"]),
        // The embeddable engine.
        .target(name: "Herald", dependencies: ["HeraldCore", "HeraldLog", "HeraldStore", "HeraldPostgres", "HeraldThreads",
                                              .product(name: "Logging", package: "swift-log"),
                                              .product(name: "Metrics", package: "swift-metrics"),
                                              .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")]),
        // `herald serve`: the engine over HTTP/JSON (routes, tokens, idempotency keys).
        .target(name: "HeraldServer", dependencies: ["Herald", "HeraldCore", "HeraldStore",
                                                    .product(name: "Hummingbird", package: "hummingbird"),
                                                    .product(name: "HummingbirdCore", package: "hummingbird"),
                                                    .product(name: "HTTPTypes", package: "swift-http-types"),
                                                    .product(name: "Logging", package: "swift-log"),
                                                    .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                                                    .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                                                    .product(name: "Crypto", package: "swift-crypto"),
                                                    .product(name: "NIOPosix", package: "swift-nio"),
                                                    .product(name: "Prometheus", package: "swift-prometheus")]),
        // Fixture runner for users' regression tests.
        .target(name: "HeraldTesting", dependencies: ["Herald", "HeraldCore", "HeraldLog"]),

        .executableTarget(
            name: "herald",
            dependencies: ["Herald", "HeraldTesting", "HeraldServer", "HeraldNATS", .product(name: "ArgumentParser", package: "swift-argument-parser"),
                           .product(name: "Logging", package: "swift-log"),
                           .product(name: "Metrics", package: "swift-metrics"),
                           .product(name: "Prometheus", package: "swift-prometheus")],
            path: "Tools/herald"),
        .executableTarget(
            name: "herald-bench",
            dependencies: ["Herald", "HeraldLog", "HeraldCore", "HeraldStore", "HeraldServer", "CSQLite", "CLZ4",
                           .product(name: "Logging", package: "swift-log"),
                           .product(name: "Prometheus", package: "swift-prometheus")],
            path: "Tools/herald-bench"),

        .testTarget(name: "HeraldCoreTests", dependencies: ["HeraldCore"]),
        .testTarget(name: "HeraldLogTests", dependencies: ["HeraldLog"]),
        .testTarget(name: "HeraldStoreTests", dependencies: ["HeraldStore", "HeraldCore"]),
        .testTarget(name: "HeraldTests", dependencies: ["Herald", "HeraldLog", "HeraldTesting", "HeraldPostgres", "HeraldNATS",
                                                        .product(name: "Logging", package: "swift-log"),
                                                        .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")]),
        // The HTTP API against a real server on a loopback port, through curl.
        .testTarget(name: "HeraldServerTests", dependencies: ["HeraldServer", "Herald", "HeraldCore"]),
        // The engine and the reads on in-memory implementations of the storage seams (no
        // segment log, no SQLite in its own code).
        .testTarget(name: "InMemoryStorageTests", dependencies: ["Herald", "HeraldCore"]),
        // Uses only the public products, exactly as a user's test target would.
        .testTarget(name: "HeraldTestingTests", dependencies: ["HeraldTesting", "Herald"]),
    ],
    swiftLanguageModes: [.v6]
)
