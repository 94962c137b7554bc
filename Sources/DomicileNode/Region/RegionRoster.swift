import DomicileCrypto
import DomicileModel
import DomicileNet
import DomicileStorage
import Foundation

/// The region's nodes as `domicile cluster init` (or `cluster add-node`)
/// lists them in the roster file: for each, its name, the address of its
/// region channel and its Ed25519 public key. Nodes are known by name and
/// key; the address is only where to dial them (docs/FORMATS.md, "Region
/// roster").
///
///     {"region": "eu", "nodes": [{"name": "eu-1", "channel": "127.0.0.1:7500",
///                                 "public_key": "<base64url, 32 bytes>"}]}
struct RegionRoster: Sendable, Equatable {
    struct Node: Sendable, Equatable {
        let name: NodeName
        let channel: SocketAddress
        let publicKey: Ed25519PublicKey

        static func == (a: Node, b: Node) -> Bool {
            a.name == b.name && a.channel == b.channel && a.publicKey.rawRepresentation == b.publicKey.rawRepresentation
        }
    }

    static let fileBytesMax = 1 << 20

    let region: RegionID
    let nodes: [Node]

    struct Invalid: Error, CustomStringConvertible {
        let description: String
    }

    static func load(path: String) throws -> RegionRoster {
        try decode(try FileIO.read(path, byteCountMax: fileBytesMax))
    }

    static func decode(_ bytes: [UInt8]) throws(Invalid) -> RegionRoster {
        guard let object = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any],
              let regionText = object["region"] as? String, let region = try? RegionID(regionText),
              let list = object["nodes"] as? [[String: Any]] else {
            throw Invalid(description: "expected {\"region\": …, \"nodes\": [{\"name\", \"channel\", \"public_key\"}]}")
        }
        var nodes: [Node] = []
        for (position, entry) in list.enumerated() {
            guard let nameText = entry["name"] as? String, let name = try? NodeName(nameText) else {
                throw Invalid(description: "nodes[\(position)].name is not a node name")
            }
            guard let channelText = entry["channel"] as? String, let channel = try? SocketAddress(parsing: channelText) else {
                throw Invalid(description: "nodes[\(position)].channel is not a host:port address")
            }
            guard let keyText = entry["public_key"] as? String, let raw = Base64.decodeURL(keyText),
                  let key = try? Ed25519PublicKey(rawRepresentation: raw) else {
                throw Invalid(description: "nodes[\(position)].public_key is not a base64url Ed25519 public key")
            }
            guard !nodes.contains(where: { $0.name == name }) else { throw Invalid(description: "node \(name) is listed twice") }
            nodes.append(Node(name: name, channel: channel, publicKey: key))
        }
        guard !nodes.isEmpty, nodes.count <= 64 else { throw Invalid(description: "a region lists 1 to 64 nodes") }
        return RegionRoster(region: region, nodes: nodes)
    }

    var names: Set<NodeName> { Set(nodes.map(\.name)) }
    func node(_ name: NodeName) -> Node? { nodes.first { $0.name == name } }
    var channelRoster: NodeRoster { NodeRoster(Dictionary(uniqueKeysWithValues: nodes.map { ($0.name, [$0.publicKey]) })) }
}
