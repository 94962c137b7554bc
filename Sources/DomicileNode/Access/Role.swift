import DomicileCrypto
import DomicileModel
import DomicileStorage
import Foundation

/// What a principal may do (API.md, "Roles").
public enum Role: String, CaseIterable, Codable, Sendable {
    case ingest
    case serve
    case analyst
    case privacyOfficer = "privacy_officer"
    case admin
    case node
}
