import DomicileModel
import DomicileNet

extension NodeConfiguration {
    /// `wan`: a WAN emulated in the node's own transports, for a federation
    /// on one machine (`cluster/up --wan`; docs/CONFIGURATION.md). What this
    /// node sends to a peer of another region waits half the pair's round
    /// trip (gossip datagrams, push-pull frames, HTTP requests, and the
    /// responses it receives), and gossip datagrams are lost at the pair's
    /// rate. Absent: no shaping, at no cost.
    public struct WAN: Sendable, Equatable {
        /// Each peer's addresses (HTTP and gossip, `host:port`) and its region.
        public var peers: [SocketAddress: RegionID] = [:]
        /// Round-trip milliseconds per unordered pair of regions; a pair not listed is not shaped.
        public var roundTripMilliseconds: [RegionPair: Double] = [:]
        /// Percent of gossip datagrams lost per pair (streams are never cut).
        public var lossPercent: [RegionPair: Double] = [:]

        /// The links from a node of `region` to its peers of other regions; nil when none is shaped.
        func shaper(from region: RegionID) -> LinkShaper? {
            var links: [SocketAddress: LinkShape] = [:]
            for (address, peerRegion) in peers where peerRegion != region {
                let pair = RegionPair(region, peerRegion)
                let roundTrip = roundTripMilliseconds[pair] ?? 0, loss = lossPercent[pair] ?? 0
                if roundTrip > 0 || loss > 0 { links[address] = LinkShape(roundTripMilliseconds: roundTrip, lossPercent: loss) }
            }
            return links.isEmpty ? nil : LinkShaper(links: links)
        }
    }

    /// Two different regions, in either order: written `eu-us` (or `us-eu`).
    public struct RegionPair: Hashable, Sendable, CustomStringConvertible {
        public let first: RegionID
        public let second: RegionID

        public init(_ a: RegionID, _ b: RegionID) {
            (first, second) = a.rawValue <= b.rawValue ? (a, b) : (b, a)
        }

        init?(parsing text: String) {
            let parts = text.split(separator: "-", omittingEmptySubsequences: false)
            guard parts.count == 2, let a = try? RegionID(String(parts[0])), let b = try? RegionID(String(parts[1])), a != b else {
                return nil
            }
            self.init(a, b)
        }

        public var description: String { "\(first)-\(second)" }
    }
}

extension NodeConfiguration.WAN: Codable {
    enum CodingKeys: String, CodingKey, CaseIterable {
        case peers
        case roundTripMilliseconds = "round_trip_ms"
        case lossPercent = "loss_percent"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.configurationFields(CodingKeys.self)
        if let peers = try container.members(.peers) {
            for key in peers.allKeys {
                guard let address = try? SocketAddress(parsing: key.stringValue) else {
                    throw peers.invalid(key, "is not a host:port address")
                }
                self.peers[address] = try peers.required(key) { try RegionID($0) }
            }
        }
        roundTripMilliseconds = try Self.pairs(container, .roundTripMilliseconds, in: 0...60_000)
        lossPercent = try Self.pairs(container, .lossPercent, in: 0...100)
    }

    /// `{"eu-us": 80, …}`: a number in `range` per pair, each pair once.
    private static func pairs(_ container: KeyedDecodingContainer<CodingKeys>, _ key: CodingKeys,
                              in range: ClosedRange<Double>) throws(NodeConfiguration.Invalid) -> [NodeConfiguration.RegionPair: Double] {
        guard let members = try container.members(key) else { return [:] }
        var values: [NodeConfiguration.RegionPair: Double] = [:]
        for member in members.allKeys.sorted(by: { $0.stringValue < $1.stringValue }) {
            guard let pair = NodeConfiguration.RegionPair(parsing: member.stringValue) else {
                throw members.invalid(member, "is not a pair of two different regions, such as eu-us")
            }
            guard values[pair] == nil else { throw members.invalid(member, "names a pair already listed") }
            guard let value = try members.number(member, in: range) else { throw members.invalid(member, "must be a number") }
            values[pair] = value
        }
        return values
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(Dictionary(uniqueKeysWithValues: peers.map { ($0.key.description, $0.value.rawValue) }), forKey: .peers)
        try container.encode(Dictionary(uniqueKeysWithValues: roundTripMilliseconds.map { ($0.key.description, $0.value) }),
                             forKey: .roundTripMilliseconds)
        try container.encode(Dictionary(uniqueKeysWithValues: lossPercent.map { ($0.key.description, $0.value) }), forKey: .lossPercent)
    }
}
