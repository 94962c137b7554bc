import DomicileCrypto
import DomicileModel
import DomicileStorage
import Foundation

public struct Principal: Sendable, Equatable {
    public let name: String
    public let roles: Set<Role>
}
