import DomicileCrypto
import DomicileModel
import DomicileStorage
import DomicileVectors

/// A collection: the shape of its vectors, the purpose they serve, how they
/// are indexed, and whether (noised) they may leave the region.
struct CollectionDefinition: Sendable, Equatable {
    let name: Name
    let dimension: Int
    let metric: Metric
    let purpose: Purpose
    let index: IndexKind
    let export: ExportSettings?
    /// The recall@10 searches without an `ef` should reach (hnsw only):
    /// their width is calibrated to it (`Calibrations`).
    var targetRecall: Double? = nil

    static let dimensionMax = 4_096

    /// The search width a query gets when it does not ask for one.
    var defaultEF: Int {
        if case .hnsw(let settings) = index { return settings.ef }
        return 0
    }
}

/// The differential-privacy parameters of a collection's exported
/// (noised) embeddings, used by the federation.
struct ExportSettings: Sendable, Equatable {
    let epsilon: Double
    let delta: Double
    let clipNorm: Double

    /// What `"export": {}` means: chosen from the measured utility curve
    /// (docs/DECISIONS.md, "Default export settings for noised embeddings").
    static let defaults = ExportSettings(epsilon: 1, delta: 1e-6, clipNorm: 1)
}
