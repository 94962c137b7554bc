import DomicileModel
import DomicileNet
import DomicileStorage

/// A node as other nodes and clients reach it.
public struct NodeAddress: Sendable, Equatable, Codable {
    public let name: String
    public let http: String
}
