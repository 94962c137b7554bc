import DomicileCrypto
import DomicileModel
import DomicilePrivacy

/// The record bodies (docs/FORMATS.md, "Federation records and exchange").
extension FederationCodec {
    // MARK: aggregate (kind 1)

    static func write(_ release: AggregateRelease, to writer: inout BinaryWriter) throws(FederationError) {
        try writer.write(short: release.releaseID)
        try writer.write(short: release.name.rawValue)
        writer.write(region: release.region)
        try writer.write(short: release.kind.rawValue)
        try writer.write(short: release.dataset.rawValue)
        try writer.write(short: release.mechanism.rawValue)
        writer.write(double: release.epsilon)
        writer.write(double: release.delta)
        writer.write(double: release.noiseScale)
        writer.write(release.releasedAt.milliseconds)
        writer.write(release.policyVersion)
        switch release.result {
        case .value(let value):
            writer.write(UInt8(1))
            writer.write(double: value)
        case .values(let categories):
            writer.write(UInt8(2))
            writer.write(UInt16(clamping: categories.count))
            for category in categories {
                try writer.write(short: category.label)
                writer.write(double: category.value)
            }
        }
    }

    static func readRelease(_ reader: inout FederationReader) throws(FederationError) -> AggregateRelease {
        let releaseID = try reader.string()
        let name = try reader.name("aggregate name")
        let region = try reader.region()
        let kind = try reader.name("aggregate kind")
        let dataset = try reader.name("dataset")
        let mechanism = try reader.name("mechanism")
        let epsilon = try reader.double()
        let delta = try reader.double()
        let noiseScale = try reader.double()
        let releasedAt = Timestamp(milliseconds: try reader.int64())
        let policyVersion = try reader.int64()
        let result: AggregateRelease.Result
        switch try reader.uint8() {
        case 1:
            result = .value(try reader.double())
        case 2:
            let count = try reader.count(UInt16.self, max: AggregateRelease.categoriesMax, elementBytesMin: 10)
            var categories: [AggregateRelease.Category] = []
            categories.reserveCapacity(count)
            for _ in 0..<count {
                let label = try reader.string()
                categories.append(AggregateRelease.Category(label: label, value: try reader.double()))
            }
            result = .values(categories)
        default:
            throw .malformed("unknown aggregate result")
        }
        return try AggregateRelease(releaseID: releaseID, name: name, region: region, kind: kind, dataset: dataset, result: result,
                                    mechanism: mechanism, epsilon: epsilon, delta: delta, noiseScale: noiseScale,
                                    releasedAt: releasedAt, policyVersion: policyVersion)
    }

    // MARK: erasure_intent (kind 2)

    static func write(_ intent: ErasureIntent, to writer: inout BinaryWriter) throws(FederationError) {
        let request = intent.request
        try ErasureFields.validate(request)
        try writer.write(short: request.erasureID)
        writer.write(request.requestedAt.milliseconds)
        writer.write(request.dueAt.milliseconds)
        try writer.write(short: request.jurisdiction)
        writer.write(region: request.originRegion)
        try writer.write(short: request.originNode)
        writer.write(request.policyVersion)
        writer.write(raw: request.linkHash)
        writer.write(UInt16(request.expectedNodes.count))
        for region in request.expectedRegions {
            let nodes = request.expectedNodes[region] ?? []
            writer.write(region: region)
            writer.write(UInt8(nodes.count))
            for node in nodes { try writer.write(short: node) }
        }
        writer.write(raw: request.signature)
        writer.write(raw: request.publicKey.rawRepresentation)
        writer.write(UInt32(intent.erasedPids.count))
        for pid in intent.erasedPids { try writer.write(short: pid.rawValue) }
    }

    static func readIntent(_ reader: inout FederationReader) throws(FederationError) -> ErasureIntent {
        let erasureID = try reader.string()
        let requestedAt = Timestamp(milliseconds: try reader.int64())
        let dueAt = Timestamp(milliseconds: try reader.int64())
        let jurisdiction = try reader.string()
        let originRegion = try reader.region()
        let originNode = try reader.string()
        let policyVersion = try reader.int64()
        let linkHash = try reader.bytes(ErasureFields.hashByteCount)
        let regionCount = try reader.count(UInt16.self, max: ErasureFields.expectedRegionsMax, elementBytesMin: 3)
        var expectedNodes: [RegionID: [String]] = [:]
        for _ in 0..<regionCount {
            let region = try reader.region()
            let nodeCount = try reader.count(UInt8.self, max: ErasureFields.nodesPerRegionMax, elementBytesMin: 2)
            var nodes: [String] = []
            nodes.reserveCapacity(nodeCount)
            for _ in 0..<nodeCount { nodes.append(try reader.string()) }
            guard expectedNodes.updateValue(nodes, forKey: region) == nil else { throw .malformed("an expected region listed twice") }
        }
        let signature = try reader.bytes(ErasureFields.signatureByteCount)
        let publicKey = try reader.publicKey()
        let pidCount = try reader.count(UInt32.self, max: ErasureIntent.pidsMax, elementBytesMin: 2)
        var pids: [PID] = []
        pids.reserveCapacity(pidCount)
        for _ in 0..<pidCount {
            guard let pid = try? PID(parsing: try reader.string()) else { throw .invalidRecord("erased pid") }
            pids.append(pid)
        }
        let request = SignedErasureRequest(erasureID: erasureID, requestedAt: requestedAt, dueAt: dueAt, jurisdiction: jurisdiction,
                                           originRegion: originRegion, originNode: originNode, policyVersion: policyVersion,
                                           linkHash: linkHash, expectedNodes: expectedNodes, signature: signature, publicKey: publicKey)
        let intent = try ErasureIntent(request: request, erasedPids: pids)
        // One encoding per intent: sorted, distinct pids and sorted nodes, as written.
        guard intent.erasedPids == pids, expectedNodes.allSatisfy({ request.expectedNodes[$0.key] == $0.value }) else {
            throw .malformed("pids or nodes not sorted and distinct")
        }
        return intent
    }

    // MARK: erasure_ack (kind 3)

    static func write(_ ack: ErasureAck, to writer: inout BinaryWriter) throws(FederationError) {
        try ErasureFields.validate(ack)
        try writer.write(short: ack.erasureID)
        writer.write(raw: ack.requestHash)
        writer.write(region: ack.region)
        try writer.write(short: ack.node)
        // The scope by its raw string: later scopes need no new codec version.
        try writer.write(short: ack.scope.rawValue)
        writer.write(ack.erasedAt.milliseconds)
        writer.write(raw: ack.linkHash)
        writer.write(UInt8(ack.walTruncated ? 1 : 0))
        writer.write(ack.policyVersion)
        writer.write(UInt8(ack.counts.count))
        for (table, count) in ack.counts.sorted(by: { $0.key < $1.key }) {
            try writer.write(short: table)
            writer.write(count)
        }
        writer.write(raw: ack.signature)
        writer.write(raw: ack.publicKey.rawRepresentation)
    }

    static func readAck(_ reader: inout FederationReader) throws(FederationError) -> ErasureAck {
        let erasureID = try reader.string()
        let requestHash = try reader.bytes(ErasureFields.hashByteCount)
        let region = try reader.region()
        let node = try reader.string()
        guard let scope = ErasureScope(rawValue: try reader.string()) else { throw .invalidRecord("ack scope") }
        let erasedAt = Timestamp(milliseconds: try reader.int64())
        let linkHash = try reader.bytes(ErasureFields.hashByteCount)
        let walTruncated = try reader.flag()
        let policyVersion = try reader.int64()
        let countCount = try reader.count(UInt8.self, max: ErasureFields.countsMax, elementBytesMin: 10)
        var counts: [String: Int64] = [:]
        var previous: String?
        for _ in 0..<countCount {
            let table = try reader.string()
            guard previous.map({ $0 < table }) ?? true else { throw .malformed("ack tables not strictly increasing") }
            previous = table
            counts[table] = try reader.int64()
        }
        let signature = try reader.bytes(ErasureFields.signatureByteCount)
        let publicKey = try reader.publicKey()
        let ack = ErasureAck(erasureID: erasureID, requestHash: requestHash, region: region, node: node, scope: scope,
                             erasedAt: erasedAt, counts: counts, linkHash: linkHash, walTruncated: walTruncated,
                             policyVersion: policyVersion, signature: signature, publicKey: publicKey)
        try ErasureFields.validate(ack)
        return ack
    }

    // MARK: noised_embedding (kind 4)

    static func write(_ embedding: NoisedEmbedding, to writer: inout BinaryWriter) throws(FederationError) {
        writer.write(region: embedding.region)
        try writer.write(short: embedding.collection.rawValue)
        try writer.write(short: embedding.purpose.rawValue)
        try writer.write(short: embedding.pid.rawValue)
        writer.write(embedding.generation)
        writer.write(embedding.exportedAt.milliseconds)
        switch embedding.content {
        case .vector(let values, let sigma, let epsilon, let delta):
            writer.write(UInt8(1))
            writer.write(double: sigma)
            writer.write(double: epsilon)
            writer.write(double: delta)
            writer.write(UInt16(values.count))
            for value in values { writer.write(value.bitPattern) }
        case .retracted:
            writer.write(UInt8(2))
        }
    }

    static func readEmbedding(_ reader: inout FederationReader) throws(FederationError) -> NoisedEmbedding {
        let region = try reader.region()
        let collection = try reader.name("collection")
        guard let purpose = try? Purpose(try reader.string()) else { throw .invalidRecord("purpose") }
        guard let pid = try? PID(parsing: try reader.string()) else { throw .invalidRecord("pid") }
        let generation = try reader.uint64()
        let exportedAt = Timestamp(milliseconds: try reader.int64())
        let content: NoisedEmbedding.Content
        switch try reader.uint8() {
        case 1:
            let sigma = try reader.double()
            let epsilon = try reader.double()
            let delta = try reader.double()
            let count = try reader.count(UInt16.self, max: NoisedEmbedding.dimensionMax, elementBytesMin: 4)
            var values: [Float] = []
            values.reserveCapacity(count)
            for _ in 0..<count { values.append(Float(bitPattern: try reader.uint32())) }
            content = .vector(values, sigma: sigma, epsilon: epsilon, delta: delta)
        case 2:
            content = .retracted
        default:
            throw .malformed("unknown noised embedding content")
        }
        return try NoisedEmbedding(region: region, collection: collection, purpose: purpose, pid: pid, generation: generation,
                                   exportedAt: exportedAt, content: content)
    }
}

extension FederationReader {
    mutating func publicKey() throws(FederationError) -> Ed25519PublicKey {
        guard let key = try? Ed25519PublicKey(rawRepresentation: try bytes(Ed25519PublicKey.byteCount)) else {
            throw .malformed("invalid public key")
        }
        return key
    }
}

extension FederationCodec {
    /// `encode(record).count`, computed without encoding (a region restoring
    /// or receiving records sizes each one against the exchange's bounds).
    /// A test holds it to `encode`.
    public static func bodySize(of record: FederationRecord) -> Int {
        func short(_ text: String) -> Int { 1 + text.utf8.count }
        switch record {
        case .aggregate(let release):
            let result = switch release.result {
            case .value: 1 + 8
            case .values(let categories): 1 + 2 + categories.reduce(0) { $0 + short($1.label) + 8 }
            }
            return short(release.releaseID) + short(release.name.rawValue) + short(release.region.rawValue) + short(release.kind.rawValue)
                + short(release.dataset.rawValue) + short(release.mechanism.rawValue) + 5 * 8 + result
        case .erasureIntent(let intent):
            let request = intent.request
            let expected = request.expectedNodes.reduce(0) { sum, element in
                sum + short(element.key.rawValue) + 1 + element.value.reduce(0) { $0 + short($1) }
            }
            return short(request.erasureID) + 2 * 8 + short(request.jurisdiction) + short(request.originRegion.rawValue)
                + short(request.originNode) + 8 + ErasureFields.hashByteCount + 2 + expected + ErasureFields.signatureByteCount
                + Ed25519PublicKey.byteCount + 4 + intent.erasedPids.reduce(0) { $0 + short($1.rawValue) }
        case .erasureAck(let ack):
            return short(ack.erasureID) + ErasureFields.hashByteCount + short(ack.region.rawValue) + short(ack.node)
                + short(ack.scope.rawValue) + 8 + ErasureFields.hashByteCount + 1 + 8 + 1
                + ack.counts.reduce(0) { $0 + short($1.key) + 8 } + ErasureFields.signatureByteCount + Ed25519PublicKey.byteCount
        case .noisedEmbedding(let embedding):
            let content = switch embedding.content {
            case .vector(let values, _, _, _): 1 + 3 * 8 + 2 + 4 * values.count
            case .retracted: 1
            }
            return short(embedding.region.rawValue) + short(embedding.collection.rawValue) + short(embedding.purpose.rawValue)
                + short(embedding.pid.rawValue) + 2 * 8 + content
        }
    }
}
