import DomicileCrypto
import DomicileModel
import DomicileNet
import DomicilePrivacy
import DomicileStorage
import DomicileVectors

/// Collections, their vectors, and consent-filtered search (local scope;
/// the federation adds the other regions' noised embeddings).
enum VectorRoutes {
    struct CollectionBody: Decodable, Sendable {
        let dimension: Int
        let metric: String
        let purpose: String
        let index: IndexBody?
        let export: ExportBody?
    }

    struct IndexBody: Decodable, Sendable {
        let kind: String
        let m: Int?
        let efConstruction: Int?
        let ef: Int?
    }

    struct ExportBody: Decodable, Sendable {
        let epsilon: Double
        let delta: Double
        let clipNorm: Double
    }

    struct VectorBody: Decodable, Sendable {
        let vector: [Double]
    }

    struct SearchBody: Decodable, Sendable {
        let vector: [Double]?
        let pid: String?
        let k: Int?
        let ef: Int?
        let purpose: String?
        let scope: String?
        let fresh: Bool?
    }

    static let defaultK = 10

    static func add(to api: inout API) {
        let services = api.services
        api.route("PUT", "/v1/collections/{name}", roles: [.admin]) { try await define($0, services) }
        api.route("PUT", "/v1/collections/{name}/vectors/{pid}", roles: [.ingest]) { try await write($0, services) }
        api.route("DELETE", "/v1/collections/{name}/vectors/{pid}", roles: [.ingest]) { try await delete($0, services) }
        api.route("POST", "/v1/collections/{name}/search", roles: [.serve], limited: true) { try await search($0, services) }
    }

    // MARK: Collections

    static func define(_ request: APIRequest, _ services: NodeServices) async throws -> HTTPResponse {
        guard let name = try? Name(request.http.parameter("name"), what: "collection name") else {
            throw DomainError.invalid("name", "collection names are 1-64 lowercase letters, digits and _, starting with a letter")
        }
        let definition = try parse(try request.http.decode(CollectionBody.self), name: name, services: services)
        let outcome = try await services.store.write { database -> VectorRecords.Upsert in
            let outcome = try VectorRecords.upsert(definition, now: request.now, in: database)
            if case .inUse = outcome { return outcome }
            services.vectors.install(definition)
            try AuditLog.append(request.event("collection.define", purpose: definition.purpose.rawValue, detail: "collection=\(name)"),
                                to: database)
            return outcome
        }
        switch outcome {
        case .created: return .json(Collection(definition: definition, count: 0), status: 201)
        case .updated: return .json(Collection(definition: definition, count: services.vectors.collection(name)?.index.count ?? 0))
        case .inUse(let count):
            throw DomainError(.conflict, code: "collection_in_use",
                            detail: "\(count) vectors have this collection's dimension, metric, purpose and index; define a new collection instead")
        }
    }

    static func parse(_ body: CollectionBody, name: Name, services: NodeServices) throws(DomainError) -> CollectionDefinition {
        guard (1...CollectionDefinition.dimensionMax).contains(body.dimension) else {
            throw DomainError.invalid("dimension", "must be 1 to \(CollectionDefinition.dimensionMax)")
        }
        guard let metric = Metric(rawValue: body.metric) else { throw DomainError.invalid("metric", "must be cosine, l2 or dot") }
        let purpose = try services.regionPurpose(body.purpose, field: "purpose")
        let index: IndexKind
        switch body.index?.kind ?? "hnsw" {
        case "flat":
            index = .flat
        case "hnsw":
            let defaults = HNSWSettings()
            let settings = HNSWSettings(m: body.index?.m ?? defaults.m, efConstruction: body.index?.efConstruction ?? defaults.efConstruction,
                                        ef: body.index?.ef ?? defaults.ef)
            if let problem = settings.problem { throw DomainError.invalid("index", problem) }
            index = .hnsw(settings)
        default:
            throw DomainError.invalid("index.kind", "must be hnsw or flat")
        }
        var export: ExportSettings?
        if let body = body.export {
            guard body.epsilon > 0, body.epsilon <= 100 else { throw DomainError.invalid("export.epsilon", "must be above 0 and at most 100") }
            guard body.delta > 0, body.delta < 1 else { throw DomainError.invalid("export.delta", "must be between 0 and 1") }
            guard body.clipNorm > 0, body.clipNorm.isFinite else { throw DomainError.invalid("export.clip_norm", "must be a positive number") }
            export = ExportSettings(epsilon: body.epsilon, delta: body.delta, clipNorm: body.clipNorm)
        }
        return CollectionDefinition(name: name, dimension: body.dimension, metric: metric, purpose: purpose, index: index, export: export)
    }

    struct Collection: JSONWritable {
        let definition: CollectionDefinition
        let count: Int

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
            }
        }
    }

    // MARK: Vectors

    /// The collection named in the path, or 404 `unknown_collection`.
    static func collection(_ request: APIRequest, _ services: NodeServices) throws(DomainError) -> VectorCollections.Collection {
        guard let name = try? Name(request.http.parameter("name"), what: "collection name"),
              let collection = services.vectors.collection(name) else {
            throw DomainError(.notFound, code: "unknown_collection", detail: "no collection with this name")
        }
        return collection
    }

    /// A vector from a request, as floats: every component finite and of
    /// the collection's dimension; else 422 `invalid_vector`.
    static func vector(_ values: [Double], for definition: CollectionDefinition, field: String) throws(DomainError) -> [Float] {
        let vector = values.map(Float.init)
        do {
            _ = try definition.metric.prepare(vector, dimension: definition.dimension)
        } catch {
            throw DomainError(.invalid, code: "invalid_vector", detail: "\(field): \(error.description)")
        }
        return vector
    }

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
        let collection = try collection(request, services)
        let definition = collection.definition
        let vector = try vector(try request.http.decode(VectorBody.self).vector, for: definition, field: "vector")
        let pid = try services.homePID(request.http.parameter("pid"))
        let purpose = definition.purpose
        try await services.writeAudited(request, action: "vector.write", pid: pid, purpose: purpose.rawValue) { database in
            guard let key = try SubjectRecords.key(of: pid, keys: services.keys, in: database) else { throw DomainError.unknownSubject() }
            let grants = try ConsentRecords.activeGrants(of: pid, in: database)
            let coverage = services.coverage(of: purpose, grants: grants, now: request.now)
            guard let basis = coverage.basis else {
                throw DomainError(.refused, code: "consent_required",
                                detail: "the subject's consent does not cover \(purpose); nothing was stored")
            }
            try VectorRecords.write(vector, collection: definition.name, pid: pid, key: key, basis: basis.rawValue,
                                    receiptID: coverage.receiptID, now: request.now, in: database)
            let deadline = services.eligibleUntil(purpose, grants: grants)
            do throws(VectorError) {
                try collection.index.upsert(pid.rawValue, vector: vector, eligibleUntil: deadline)
            } catch {
                throw DomainError(.noRoom, code: "collection_full", detail: error.description)
            }
            try AuditLog.append(request.event("vector.write", pid: pid.rawValue, purpose: purpose.rawValue,
                                              detail: "collection=\(definition.name)"), to: database)
        }
        return .json(Written(pid: pid, collection: definition.name))
    }

    static func delete(_ request: APIRequest, _ services: NodeServices) async throws -> HTTPResponse {
        let collection = try collection(request, services)
        let name = collection.definition.name
        let pid = try services.homePID(request.http.parameter("pid"))
        try await services.writeAudited(request, action: "vector.delete", pid: pid) { database in
            let deleted = try VectorRecords.delete(collection: name, pid: pid, in: database)
            collection.index.remove(pid.rawValue)
            try AuditLog.append(request.event("vector.delete", pid: pid.rawValue, outcome: deleted ? "ok" : "absent",
                                              detail: "collection=\(name)"), to: database)
        }
        return HTTPResponse(status: 204)
    }

    // MARK: Search

    struct Results: JSONWritable {
        let hits: [SearchHit]
        let region: RegionID
        let partial: Bool

        func write(to json: inout JSONWriter) {
            json.object { json in
                json.key("results")
                json.array(hits) { json, hit in
                    json.object { json in
                        json.member("pid", hit.label)
                        json.member("score", Double(hit.score))
                        json.member("region", region.rawValue)
                        json.member("source", "local")
                    }
                }
                json.member("partial", partial)
                json.key("regions")
                json.object { json in
                    json.key(escaping: region.rawValue)
                    json.value("local")
                }
            }
        }
    }

    static func search(_ request: APIRequest, _ services: NodeServices) async throws -> HTTPResponse {
        let collection = try collection(request, services)
        let definition = collection.definition
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
        guard purpose == definition.purpose else {
            throw DomainError(.refused, code: "purpose_mismatch", detail: "this collection serves \(definition.purpose), not \(purpose)")
        }
        let now = request.now.milliseconds
        let query: [Float]
        var exclude: String?
        switch (body.vector, body.pid) {
        case (let values?, nil):
            query = try vector(values, for: definition, field: "vector")
        case (nil, let text?):
            let pid = try services.homePID(text)
            // A search by example processes the example's subject too: its vector must be eligible now.
            guard let stored = collection.index.vector(of: pid.rawValue),
                  collection.index.isEligible(pid.rawValue, now: now) else {
                try await services.audit(request.event("vector.search", pid: pid.rawValue, purpose: purpose.rawValue, outcome: "not_found",
                                                       detail: "collection=\(definition.name)"))
                request.refusals.markAudited()
                throw DomainError(.notFound, code: "unknown_vector", detail: "no eligible vector for this pid in the collection")
            }
            query = stored
            exclude = pid.rawValue
        default:
            throw DomainError.invalid("vector, pid", "give exactly one of them")
        }
        let wanted = k + (exclude == nil ? 0 : 1)
        let result = try collection.index.search(query, k: wanted, ef: body.ef ?? definition.defaultEF, now: now)
        let hits = Array(result.hits.filter { $0.label != exclude }.prefix(k))
        services.metrics.increment("domicile_vector_searches_total", labels: ["plan": result.plan.rawValue])
        try await services.audit(request.event("vector.search", pid: exclude, purpose: purpose.rawValue,
                                               detail: "collection=\(definition.name),returned=\(hits.count)"))
        // The federation is not built yet: a federated search is answered by this region alone, and says so.
        return .json(Results(hits: hits, region: services.region, partial: scope == "federated"))
    }
}
