// swift-tools-version:6.0
//
// Domicile: a region-sharded, privacy-first store for CRM-backed personalization.
// No package dependencies: the toolchain, plus SQLite and OpenSSL 3 as system
// libraries. Module layering (a module imports only modules listed above it)
// is documented in docs/ARCHITECTURE.md.
import PackageDescription

let package = Package(
    name: "Domicile",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "domicile", targets: ["domicile"]),
        // The Swift client of the HTTP API (docs/CLIENT.md).
        .library(name: "DomicileClient", targets: ["DomicileClient"]),
    ],
    targets: [
        // C libraries behind thin module maps.
        .systemLibrary(
            name: "CSQLite",
            providers: [.apt(["libsqlite3-dev"])]
        ),
        .systemLibrary(
            name: "COpenSSL",
            providers: [.apt(["libssl-dev"])]
        ),
        // glibc's epoll, eventfd, accept4, pthread_setname_np and mallinfo2, which the Glibc module does not export.
        .systemLibrary(name: "CLinux"),

        // Pure vocabulary: regions, pids, identifiers, encodings.
        .target(name: "DomicileModel"),
        // Pure functions over OpenSSL: HMAC, AES-GCM, Ed25519, SHA-256, CSPRNG, keyring.
        .target(name: "DomicileCrypto", dependencies: ["DomicileModel", "COpenSSL"]),
        // Pure privacy logic: residency policy, consent receipts and folding (later: DP).
        // Optimized in debug builds too: the samplers' statistical tests draw millions of samples in 128-bit arithmetic.
        .target(name: "DomicilePrivacy", dependencies: ["DomicileModel", "DomicileCrypto"],
                swiftSettings: [.unsafeFlags(["-O"], .when(configuration: .debug))]),
        // Vectors: SIMD distance kernels, flat and HNSW indexes with eligibility filters and deletes.
        // A prefetch hint for the graph search (a header only; no library is linked).
        .systemLibrary(name: "CPrefetch"),
        // Distance kernels for several instruction sets (SSE2, AVX2+FMA, AVX-512F; NEON), the best chosen when the
        // process starts: per-function target attributes only, so the portable binary runs on any x86-64 or arm64.
        // Optimized in debug builds too, as DomicileVectors is.
        .target(name: "CVectorKernels", cSettings: [.unsafeFlags(["-O2"], .when(configuration: .debug))]),
        // Optimized in debug builds too: the tests build real graphs, which unoptimized code does 30 times slower.
        .target(name: "DomicileVectors", dependencies: ["DomicileModel", "CPrefetch", "CVectorKernels"],
                swiftSettings: [.unsafeFlags(["-O"], .when(configuration: .debug))]),
        // Membership: SWIM with Lifeguard as pure state machines; the gossip wire codec.
        .target(name: "DomicileGossip", dependencies: ["DomicileModel", "DomicileCrypto"]),
        // Disk: SQLite connection, statements, migrations, group commit; keyring files.
        .target(name: "DomicileStorage", dependencies: ["DomicileModel", "DomicileCrypto", "CSQLite", "CLinux"]),

        // POSIX: processes, sockets, the event loop and HTTP/1.1.
        .target(name: "DomicileNet", dependencies: ["DomicileModel", "CLinux", "COpenSSL"]),

        // The client library: typed calls of the whole HTTP API over DomicileNet's HTTP client (docs/CLIENT.md).
        .target(name: "DomicileClient", dependencies: ["DomicileModel", "DomicileNet"]),

        // The node: services, routes, and the shell that runs them.
        .target(name: "DomicileNode", dependencies: ["DomicileModel", "DomicileCrypto", "DomicilePrivacy", "DomicileVectors", "DomicileGossip",
                                                     "DomicileStorage", "DomicileConsensus", "DomicileFederation",
                                                     "DomicileNet"]),

        // The region log: Raft as a pure state machine (steps in; what to persist, send and apply out) and its wire codec.
        // Optimized in debug builds too: its simulator tests run hundreds of seeded cluster histories.
        .target(name: "DomicileConsensus", dependencies: ["DomicileModel"],
                swiftSettings: [.unsafeFlags(["-O"], .when(configuration: .debug))]),

        // The federation: anti-entropy of DP releases and erasure signals between regions as a pure state machine
        // (steps in; what to persist, send and apply out) and its wire codec, which has no case for resident data.
        // Optimized in debug builds too, like DomicileConsensus: the simulator runs hundreds of seeded federations.
        .target(name: "DomicileFederation", dependencies: ["DomicileModel", "DomicileCrypto", "DomicilePrivacy"],
                swiftSettings: [.unsafeFlags(["-O"], .when(configuration: .debug))]),

        // Simulators replayable from a seed: many membership instances on a virtual clock and a simulated network;
        // a region log's nodes with simulated disks, network, clock and crashes, checked after every step;
        // a federation of regions exchanging releases and erasure signals.
        // Optimized in debug builds too, like DomicileConsensus: its tests run thousands of seeded histories.
        .target(name: "DomicileSimulation", dependencies: ["DomicileModel", "DomicileGossip", "DomicileConsensus", "DomicileFederation",
                                                           "DomicilePrivacy", "DomicileCrypto"],
                swiftSettings: [.unsafeFlags(["-O"], .when(configuration: .debug))]),

        .executableTarget(
            name: "domicile",
            dependencies: ["DomicileClient", "DomicileModel", "DomicileCrypto", "DomicilePrivacy", "DomicileVectors", "DomicileStorage", "DomicileNet", "DomicileNode",
                           "DomicileGossip", "DomicileSimulation", "DomicileConsensus", "DomicileFederation", "CLinux"]
        ),

        // The HTTP request parser's fuzz target (Tests/Fuzz/run http); a corpus replayer otherwise.
        .target(name: "DomicileFuzzSupport", path: "Tests/Fuzz/Support"),
        .executableTarget(name: "domicile-fuzz-http", dependencies: ["DomicileNet", "DomicileFuzzSupport"], path: "Tests/Fuzz/HTTPRequestParser"),
        // The server's TLS framing, its plaintext handed to the request parser (Tests/Fuzz/run tls); a corpus replayer otherwise.
        .executableTarget(name: "domicile-fuzz-tls", dependencies: ["DomicileNet", "DomicileFuzzSupport"], path: "Tests/Fuzz/TLSServer"),
        // The gossip packet decoder's fuzz target (Tests/Fuzz/run gossip); a corpus replayer otherwise.
        .executableTarget(name: "domicile-fuzz-gossip", dependencies: ["DomicileGossip", "DomicileFuzzSupport"], path: "Tests/Fuzz/GossipPacket"),
        // Applying a peer's changeset (a region log entry) (Tests/Fuzz/run changeset); a corpus replayer otherwise.
        .executableTarget(name: "domicile-fuzz-changeset", dependencies: ["DomicileStorage", "DomicileFuzzSupport"], path: "Tests/Fuzz/Changeset"),
        // The `.npy` / `.fvecs` readers of `bench vectors --dataset` (Tests/Fuzz/run vectorfile); a corpus replayer otherwise.
        .executableTarget(name: "domicile-fuzz-vectorfile", dependencies: ["DomicileVectors", "DomicileFuzzSupport"], path: "Tests/Fuzz/VectorFile"),
        // The decoders of a saved vector graph (Tests/Fuzz/run graphsnapshot); a corpus replayer otherwise.
        .executableTarget(name: "domicile-fuzz-graphsnapshot", dependencies: ["DomicileVectors", "DomicileFuzzSupport"], path: "Tests/Fuzz/GraphSnapshot"),

        // Helpers shared by the test targets: temporary directories, the built binary, seeded randomness.
        .target(name: "DomicileTestSupport", dependencies: ["DomicileNet"], path: "Tests/DomicileTestSupport"),
        .testTarget(name: "DomicileModelTests", dependencies: ["DomicileModel"]),
        .testTarget(name: "DomicileCryptoTests", dependencies: ["DomicileCrypto"]),
        .testTarget(name: "DomicileNetTests", dependencies: ["DomicileNet", "DomicileModel", "DomicileTestSupport"]),
        .testTarget(name: "DomicileStorageTests", dependencies: ["DomicileStorage", "DomicileCrypto", "DomicileModel", "DomicileTestSupport"]),
        .testTarget(name: "DomicileGossipTests", dependencies: ["DomicileGossip", "DomicileModel", "DomicileCrypto"]),
        // Optimized in debug builds too, with DomicileSimulation: the region log's seeded histories.
        .testTarget(name: "DomicileSimulationTests", dependencies: ["DomicileSimulation", "DomicileGossip", "DomicileConsensus", "DomicileModel"],
                    swiftSettings: [.unsafeFlags(["-O"], .when(configuration: .debug))]),
        // Unit tests of the machine over DomicileSimulation's SimulatedRegion.
        .testTarget(name: "DomicileConsensusTests", dependencies: ["DomicileConsensus", "DomicileSimulation", "DomicileModel"],
                    swiftSettings: [.unsafeFlags(["-O"], .when(configuration: .debug))]),
        // The federation's machine and codec, and its simulator's seeded runs.
        .testTarget(name: "DomicileFederationTests",
                    dependencies: ["DomicileFederation", "DomicileSimulation", "DomicileModel", "DomicilePrivacy", "DomicileCrypto"],
                    swiftSettings: [.unsafeFlags(["-O"], .when(configuration: .debug))]),
        .testTarget(name: "DomicileVectorsTests", dependencies: ["DomicileVectors", "CVectorKernels", "DomicileModel"]),
        .testTarget(name: "DomicilePrivacyTests", dependencies: ["DomicilePrivacy", "DomicileModel", "DomicileCrypto"]),
        // Start the built `domicile` binary as real node processes.
        .testTarget(name: "DomicileNodeTests",
                    dependencies: ["domicile", "DomicileNode", "DomicileNet", "DomicileStorage", "DomicileModel", "DomicilePrivacy",
                                   "DomicileVectors", "DomicileConsensus", "DomicileCrypto", "DomicileFederation", "DomicileTestSupport"]),
        // The client against real node processes, one end-to-end flow per API area.
        .testTarget(name: "DomicileClientTests", dependencies: ["domicile", "DomicileClient", "DomicileNet", "DomicileTestSupport"]),
        // Runs the built `domicile` binary as a child process.
        .testTarget(name: "DomicileCLITests", dependencies: ["domicile", "DomicileModel", "DomicileStorage", "DomicileNet", "DomicileCrypto", "DomicilePrivacy",
                                                      "DomicileTestSupport"]),
    ]
)
