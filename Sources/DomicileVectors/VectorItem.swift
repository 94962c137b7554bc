/// One vector to write in a batch (`VectorIndex.upsertAll`).
public struct VectorItem: Sendable {
    public let label: String
    public let vector: [Float]
    /// Milliseconds since the epoch (`Int64.max` for always).
    public let eligibleUntil: Int64

    public init(label: String, vector: [Float], eligibleUntil: Int64) {
        self.label = label
        self.vector = vector
        self.eligibleUntil = eligibleUntil
    }
}
