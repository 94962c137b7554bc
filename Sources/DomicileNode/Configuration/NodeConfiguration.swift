import DomicileModel
import DomicileNet
import DomicileStorage
import Foundation

/// A node's configuration file (JSON; docs/CONFIGURATION.md). Relative paths
/// are relative to the file's directory. Unknown keys are errors: a typo must
/// not silently fall back to a default. Read and written by its `Codable`
/// conformance (NodeConfiguration+Codable.swift).
public struct NodeConfiguration: Sendable, Equatable {
    public struct HTTP: Sendable, Equatable {
        public var address: SocketAddress
        public var settings: HTTPServer.Settings
    }

    public struct Gossip: Sendable, Equatable, Encodable {
        /// UDP (and TCP push-pull) address to bind; nil runs without gossip.
        public var address: SocketAddress?
        /// The address other nodes use, when it differs from `address`.
        public var advertise: SocketAddress?
        public var seeds: [SocketAddress]
        /// `default`: LAN timings in the region pool, WAN across regions;
        /// `loopback`: fast timings for nodes on one machine.
        public var profile: Profile = .standard
        /// Overrides of the profile's probe interval and timeout, for both pools.
        public var probeIntervalMilliseconds: Int64?
        public var probeTimeoutMilliseconds: Int64?

        public enum Profile: String, Sendable, Encodable {
            case standard = "default"
            case loopback
        }
    }

    /// `region_log`: where this node's region channel listens, the roster
    /// of the region's nodes, and the log's timing.
    public struct RegionLog: Sendable, Equatable {
        /// TCP address of the region channel (Raft messages, forwarded requests).
        public var address: SocketAddress
        /// The region's roster file: each node's name, channel address and
        /// Ed25519 public key (`domicile cluster init` writes it).
        public var rosterPath: String
        /// One Raft tick; the election timeout is `electionTicks` of them.
        public var tickMilliseconds: Int64 = 100
        public var electionTicks = 10
        /// Start with no membership and wait to be added by the leader
        /// (`domicile cluster add-node`), instead of bootstrapping the
        /// region with every node of the roster as a voter.
        public var join = false
        /// How long a write waits for its entry to commit before it is
        /// refused with 503 `no_quorum`.
        public var commitTimeoutMilliseconds: Int64 = 5_000
        /// Entries kept in raft.sqlite before it is compacted; a follower
        /// further behind than the log reaches gets a snapshot.
        public var compactEntries = 10_000

        public init(address: SocketAddress, rosterPath: String) {
            self.address = address
            self.rosterPath = rosterPath
        }
    }

    /// The period a privacy budget renews over (UTC).
    public enum PrivacyPeriod: String, Sendable, Encodable {
        case day
        case month

        /// The period containing `time`: `2026-11-22` or `2026-11`.
        func key(at time: Timestamp) -> String {
            let text = time.rfc3339
            return String(text.prefix(self == .day ? 10 : 7))
        }
    }

    /// An admin's allocation of the region's privacy budget to one `dataset`
    /// label: within the region's limit, never adding to it.
    public struct PrivacyLabelCap: Sendable, Equatable, Encodable {
        public var epsilon: Double
        public var delta: Double

        public init(epsilon: Double, delta: Double) {
            self.epsilon = epsilon
            self.delta = delta
        }
    }

    public struct Limits: Sendable, Equatable, Encodable {
        /// Receipts in one `POST /v1/consents/batch` at most.
        public var batchReceiptsMax = 1_000
        /// Items in one `POST /v1/subjects/batch` or `POST /v1/collections/{name}/vectors/batch` at most.
        public var batchItemsMax = 1_000
        /// Events in one `GET /v1/audit` page at most.
        public var auditPageMax = 1_000
        /// Largest body of a batch request (the batch endpoint's own body limit).
        public var batchBodyBytesMax = 8 * 1_024 * 1_024
        /// How far in the future a `collected_at` may be (clock skew), in seconds.
        public var clockSkewSecondsMax: Int64 = 300
        /// Reads and searches per second per principal (token bucket rate), and the bucket's size.
        public var readRatePerSecond: Double = 1_000
        public var readBurst: Double = 2_000
        /// Distinct subjects one principal may touch in a minute before an access anomaly is recorded.
        public var distinctSubjectsPerMinute = 1_000
        /// The region's privacy budget per period (basic composition of
        /// every release and charge in the period, whatever its `dataset` label).
        public var privacyEpsilonPerPeriod = 10.0
        public var privacyDeltaPerPeriod = 1e-5
        public var privacyPeriod = PrivacyPeriod.month
        /// Caps on what some labels may spend of the region's budget per period.
        public var privacyLabelCaps: [Name: PrivacyLabelCap] = [:]
        /// Each subject's budget for exported (noised) embeddings per
        /// period, over all collections.
        public var embeddingEpsilonPerPeriod = 16.0
        public var embeddingDeltaPerPeriod = 1e-5
        /// Results one search may ask for (`k`); above it: 422 `k_too_large`.
        public var searchResultsCountMax = 100
        /// How often the retention sweeper deletes expired feature values and consent grants.
        public var retentionSweepIntervalMilliseconds: Int64 = 60_000
        /// How long a changed collection's graph waits before it is saved
        /// (docs/DECISIONS.md, "Graph snapshots"); 0: graphs are never saved.
        public var graphSnapshotIntervalMilliseconds: Int64 = 300_000
        /// Changes (writes and removals) after which a graph is saved sooner.
        public var graphSnapshotChanges = 10_000
    }

    public var node: NodeName
    public var region: RegionID
    public var dataDirectory: String
    public var http: HTTP
    public var gossip: Gossip
    /// The region log (Raft among the region's nodes); nil runs the node as
    /// a store of its own, with no log (docs/CONFIGURATION.md).
    public var regionLog: RegionLog?
    /// `federation.rosters`: the roster files of every region of the
    /// federation (each node's name and Ed25519 public key), which
    /// authenticate the senders of federation messages and the signers of
    /// erasure intents and acks. Empty: senders are not authenticated beyond
    /// the federation key (docs/CONFIGURATION.md).
    public var federationRosterPaths: [String] = []
    /// `wan`: delays and loss to the peers of other regions, emulated in
    /// the node's own transports (`cluster/up --wan`); nil: none.
    public var wan: WAN?
    /// `tls`: the HTTP API's certificate and trust, or explicit plaintext.
    public var tls: TLS
    public var keyringPath: String
    public var masterKey: MasterKeySource
    public var policyPath: String
    public var principalsPath: String
    public var accessLog: Bool
    public var limits: Limits

    /// The body limit of ordinary routes; the HTTP server's own limit is
    /// raised to the batch endpoint's.
    public var routeBodyBytesMax: Int

    public var databasePath: String { (dataDirectory as NSString).appendingPathComponent("node.sqlite") }

    public struct Invalid: Error, CustomStringConvertible {
        public let field: String
        public let reason: String
        public var description: String { "config \(field): \(reason)" }
    }

    public static let fileBytesMax = 1 << 20

    public static func load(path: String) throws -> NodeConfiguration {
        let bytes = try FileIO.read(path, byteCountMax: fileBytesMax)
        let base = (path as NSString).deletingLastPathComponent
        return try decode(bytes, relativeTo: base.isEmpty ? "." : base)
    }

    /// Reads a configuration file's bytes: the one way a configuration is
    /// read (`init(from:)`, in NodeConfiguration+Codable.swift). Relative
    /// paths are resolved against `base`.
    public static func decode(_ bytes: [UInt8], relativeTo base: String) throws(Invalid) -> NodeConfiguration {
        let decoder = JSONDecoder()
        decoder.userInfo[directoryKey] = base
        do {
            return try decoder.decode(NodeConfiguration.self, from: Data(bytes))
        } catch let error as Invalid {
            throw error
        } catch {
            throw Invalid(field: "(file)", reason: "not a JSON object")
        }
    }

    /// Writes the configuration as a file `decode` reads back to an equal one.
    public func encoded() throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return Array(try encoder.encode(self))
    }
}
