import DomicileCrypto
import DomicileModel
import DomicilePrivacy
import DomicileStorage
import Foundation

/// One release, as stored and served.
struct Release: Sendable {
    let releaseID: String
    let region: String
    let name: String
    let kind: String
    let dataset: String
    let result: AggregateResult
    let mechanism: String
    let epsilon: Double
    let delta: Double
    let noiseScale: Double
    let releasedAt: Timestamp
}
