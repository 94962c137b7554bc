import DomicileCrypto
import DomicileModel
import DomicileNet
import DomicilePrivacy
import DomicileStorage
import DomicileVectors

/// Collections, their vectors, and consent-filtered search, local or
/// federated (the other regions' noised embeddings; `FederatedSearch`).
enum VectorRoutes {
    struct VectorBody: Decodable, Sendable {
        let vector: [Double]
    }

    struct BatchEntry: Decodable, Sendable {
        let pid: String
        let vector: [Double]
    }

    struct BatchBody: Decodable, Sendable {
        let vectors: [BatchEntry]
    }

    struct SearchBody: Decodable, Sendable {
        let vector: [Double]?
        let pid: String?
        let k: Int?
        let ef: Int?
        let purpose: String?
        let scope: String?
        let fresh: Bool?
        let deadlineMs: Int64?
    }

    static let defaultK = 10

    static func add(to api: inout API) {
        let services = api.services
        api.route("PUT", "/v1/collections/{name}", roles: [.admin]) { try await define($0, services) }
        api.route("GET", "/v1/collections/{name}", roles: [.admin, .serve], limited: true) { try await read($0, services) }
        api.route("PUT", "/v1/collections/{name}/vectors/{pid}", roles: [.ingest]) { try await write($0, services) }
        api.route("POST", batchPattern, roles: [.ingest], bodyBytesMax: services.configuration.limits.batchBodyBytesMax) {
            try await writeBatch($0, services)
        }
        api.route("DELETE", "/v1/collections/{name}/vectors/{pid}", roles: [.ingest]) { try await delete($0, services) }
        api.route("POST", "/v1/collections/{name}/search", roles: [.serve], limited: true) { try await search($0, services) }
    }

    // MARK: Collections

    static func define(_ request: APIRequest, _ services: NodeServices) async throws -> HTTPResponse {
        guard let name = try? Name(request.http.parameter("name"), what: "collection name") else {
            throw DomainError.invalid("name", "collection names are 1-64 lowercase letters, digits and _, starting with a letter")
        }
        let definition = try VectorService.definition(try request.http.decode(VectorService.CollectionFields.self), name: name, services: services)
        let (created, count) = try await VectorService.define(definition, call: request.call)
        let calibration = services.vectors.collection(name).flatMap { services.calibrations.current($0) }
        return .json(Collection(definition: definition, count: count, calibration: calibration), status: created ? 201 : 200)
    }

    /// A collection's definition, size, and its search width's calibration.
    static func read(_ request: APIRequest, _ services: NodeServices) async throws -> HTTPResponse {
        let collection = try VectorService.collection(named: request.http.parameter("name"), services: services)
        return .json(Collection(definition: collection.definition, count: collection.index.count,
                                calibration: services.calibrations.current(collection)))
    }


    struct Collection: JSONWritable {
        let definition: CollectionDefinition
        let count: Int
        /// nil: no target recall, or not measured yet (written as null).
        let calibration: RecallCalibration?

        func write(to json: inout JSONWriter) {
            json.object { json in
                json.member("name", definition.name.rawValue)
                json.member("dimension", definition.dimension)
                json.member("metric", definition.metric.rawValue)
                json.member("purpose", definition.purpose.rawValue)
                json.key("index")
                json.object { json in
                    switch definition.index {
                    case .flat:
                        json.member("kind", "flat")
                    case .hnsw(let settings):
                        json.member("kind", "hnsw")
                        json.member("m", settings.m)
                        json.member("ef_construction", settings.efConstruction)
                        json.member("ef", settings.ef)
                        if let target = definition.targetRecall { json.member("target_recall", target) }
                    }
                }
                json.key("export")
                if let export = definition.export {
                    json.object { json in
                        json.member("epsilon", export.epsilon)
                        json.member("delta", export.delta)
                        json.member("clip_norm", export.clipNorm)
                    }
                } else {
                    json.null()
                }
                json.member("count", count)
                json.key("calibration")
                if let calibration {
                    json.object { json in
                        json.member("ef", calibration.ef)
                        json.member("estimated_recall", calibration.estimatedRecall)
                        json.member("sample", calibration.sample)
                        json.member("vectors", calibration.vectors)
                    }
                } else {
                    json.null()
                }
            }
        }
    }

    // MARK: Vectors

    struct Written: JSONWritable {
        let pid: PID
        let collection: Name

        func write(to json: inout JSONWriter) {
            json.object { json in
                json.member("pid", pid.rawValue)
                json.member("collection", collection.rawValue)
            }
        }
    }

    static func write(_ request: APIRequest, _ services: NodeServices) async throws -> HTTPResponse {
        let collection = try VectorService.collection(named: request.http.parameter("name"), services: services)
        let body = try request.http.decode(VectorBody.self) { VectorJSON.numbers(in: $0, key: "vector").map(VectorBody.init) }
        let vector = try VectorService.vector(body.vector, for: collection.definition, field: "vector")
        let pid = try services.homePID(request.http.parameter("pid"))
        try await VectorService.write(vector, for: pid, in: collection, call: request.call)
        return .json(Written(pid: pid, collection: collection.definition.name))
    }

    static let batchPattern = "/v1/collections/{name}/vectors/batch"

    /// Each vector's answer as its single write would give it (status, and
    /// its pid or its problem), in the order sent.
    static func writeBatch(_ request: APIRequest, _ services: NodeServices) async throws -> HTTPResponse {
        let collection = try VectorService.collection(named: request.http.parameter("name"), services: services)
        let body = try request.http.decode(BatchBody.self) { bytes in
            VectorJSON.entries(in: bytes, list: "vectors", text: "pid", numbers: "vector").map { entries in
                BatchBody(vectors: entries.map { BatchEntry(pid: $0.text, vector: $0.numbers) })
            }
        }
        let entries = body.vectors.map { entry in
            VectorService.BatchEntry(pidText: entry.pid, checked: Result { () throws(DomainError) in
                let pid = try services.homePID(entry.pid)
                return (pid, try VectorService.vector(entry.vector, for: collection.definition, field: "vector"))
            })
        }
        let results = try await VectorService.writeBatch(entries, in: collection, refusalDetail: Refusals.detail(method: "POST", pattern: batchPattern),
                                                         call: request.call)
        return .json(BatchResults(results) { json, pid in
            json.member("pid", pid.rawValue)
            json.member("collection", collection.definition.name.rawValue)
        })
    }

    static func delete(_ request: APIRequest, _ services: NodeServices) async throws -> HTTPResponse {
        let collection = try VectorService.collection(named: request.http.parameter("name"), services: services)
        let pid = try services.homePID(request.http.parameter("pid"))
        try await VectorService.delete(pid, from: collection, call: request.call)
        return HTTPResponse(status: 204)
    }

    // MARK: Search

    struct Results: JSONWritable {
        let result: FederatedSearch.Result

        func write(to json: inout JSONWriter) {
            json.object { json in
                json.key("results")
                json.array(result.hits) { json, hit in
                    json.object { json in
                        json.member("pid", hit.pid)
                        json.member("score", Double(hit.score))
                        json.member("score_kind", hit.scoreKind)
                        json.member("region", hit.region.rawValue)
                        json.member("source", hit.source.rawValue)
                    }
                }
                json.member("partial", result.partial)
                json.key("regions")
                json.object { json in
                    for (region, report) in result.regions.sorted(by: { $0.key < $1.key }) {
                        json.key(escaping: region.rawValue)
                        json.object { json in
                            json.member("status", report.status)
                            if let took = report.tookMilliseconds { json.member("took_ms", Int(took)) }
                            if let hits = report.hits { json.member("hits", hits) }
                            if let asOf = report.asOf { json.member("as_of", asOf) }
                            if let reason = report.reason { json.member("reason", reason) }
                        }
                    }
                }
            }
        }
    }

    static func search(_ request: APIRequest, _ services: NodeServices) async throws -> HTTPResponse {
        let collection = try VectorService.collection(named: request.http.parameter("name"), services: services)
        let body = try request.http.decode(SearchBody.self)
        let k = body.k ?? defaultK
        let kMax = services.configuration.limits.searchResultsCountMax
        guard k >= 1 else { throw DomainError.invalid("k", "must be at least 1") }
        guard k <= kMax else { throw DomainError(.invalid, code: "k_too_large", detail: "k: at most \(kMax) results per search") }
        if let ef = body.ef, !HNSWSettings.efRange.contains(ef) {
            throw DomainError.invalid("ef", "must be \(HNSWSettings.efRange.lowerBound) to \(HNSWSettings.efRange.upperBound)")
        }
        guard let purposeText = body.purpose, !purposeText.isEmpty else {
            throw DomainError(.malformed, code: "purpose_required", detail: "say why you search: \"purpose\"")
        }
        let scope = body.scope ?? "local"
        guard scope == "local" || scope == "federated" else { throw DomainError.invalid("scope", "must be local or federated") }
        let purpose = try services.regionPurpose(purposeText, field: "purpose")
        try VectorService.checkPurpose(purpose, of: collection)
        let query: VectorService.Query
        switch (body.vector, body.pid) {
        case (let values?, nil): query = .vector(try VectorService.vector(values, for: collection.definition, field: "vector"))
        case (nil, let text?): query = .example(try services.homePID(text))
        default: throw DomainError.invalid("vector, pid", "give exactly one of them")
        }
        let deadline = body.deadlineMs ?? FederatedSearch.defaultDeadlineMilliseconds
        guard FederatedSearch.deadlineRange.contains(deadline) else {
            throw DomainError.invalid("deadline_ms", "must be \(FederatedSearch.deadlineRange.lowerBound) to \(FederatedSearch.deadlineRange.upperBound)")
        }
        let search = FederatedSearch.Request(query: query, k: k, ef: body.ef, purpose: purpose, federated: scope == "federated",
                                             fresh: body.fresh ?? false, deadlineMilliseconds: deadline)
        return .json(Results(result: try await FederatedSearch.search(search, in: collection, call: request.call)))
    }
}
