import DomicileCrypto
import DomicileModel
import DomicileNet
import DomicilePrivacy
import DomicileStorage
import DomicileVectors

/// Collections, their vectors, and consent-filtered search (local scope;
/// the federation adds the other regions' noised embeddings).
enum VectorService {
    /// A collection as a client defines it, as sent.
    struct CollectionFields: Decodable, Sendable {
        let dimension: Int
        let metric: String
        let purpose: String
        let index: IndexFields?
        let export: ExportFields?
    }

    struct IndexFields: Decodable, Sendable {
        let kind: String
        let m: Int?
        let efConstruction: Int?
        let ef: Int?
        let targetRecall: Double?
    }

    /// Missing fields take `ExportSettings.defaults`.
    struct ExportFields: Decodable, Sendable {
        let epsilon: Double?
        let delta: Double?
        let clipNorm: Double?
    }

    /// The collection a definition describes, validated (422 naming the field otherwise).
    static func definition(_ body: CollectionFields, name: Name, services: NodeServices) throws(DomainError) -> CollectionDefinition {
        guard (1...CollectionDefinition.dimensionMax).contains(body.dimension) else {
            throw DomainError.invalid("dimension", "must be 1 to \(CollectionDefinition.dimensionMax)")
        }
        guard let metric = Metric(rawValue: body.metric) else { throw DomainError.invalid("metric", "must be cosine, l2 or dot") }
        let purpose = try services.regionPurpose(body.purpose, field: "purpose")
        let index: IndexKind
        let targetRecall = body.index?.targetRecall
        if let targetRecall, !RecallCalibration.targetRange.contains(targetRecall) {
            throw DomainError.invalid("index.target_recall", "must be \(RecallCalibration.targetRange.lowerBound) to \(RecallCalibration.targetRange.upperBound)")
        }
        switch body.index?.kind ?? "hnsw" {
        case "flat":
            guard targetRecall == nil else { throw DomainError.invalid("index.target_recall", "only an hnsw index has a recall to target") }
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
            let defaults = ExportSettings.defaults
            let (epsilon, delta, clipNorm) = (body.epsilon ?? defaults.epsilon, body.delta ?? defaults.delta, body.clipNorm ?? defaults.clipNorm)
            guard epsilon > 0, epsilon <= 100 else { throw DomainError.invalid("export.epsilon", "must be above 0 and at most 100") }
            guard delta > 0, delta < 1 else { throw DomainError.invalid("export.delta", "must be between 0 and 1") }
            guard clipNorm > 0, clipNorm.isFinite else { throw DomainError.invalid("export.clip_norm", "must be a positive number") }
            export = ExportSettings(epsilon: epsilon, delta: delta, clipNorm: clipNorm)
        }
        return CollectionDefinition(name: name, dimension: body.dimension, metric: metric, purpose: purpose, index: index, export: export,
                                    targetRecall: targetRecall)
    }

    /// Defines (or redefines) a collection and installs its index; returns
    /// whether it is new and how many vectors it holds.
    static func define(_ definition: CollectionDefinition, call: CallContext) async throws -> (created: Bool, count: Int) {
        let services = call.services
        let outcome = try await services.store.write { database -> VectorRecords.Upsert in
            let exported = services.vectors.collection(definition.name)?.definition.export != nil
            let outcome = try VectorRecords.upsert(definition, now: call.now, in: database)
            if case .inUse = outcome { return outcome }
            // Without export settings the vectors never leave: what left is retracted everywhere.
            if exported, definition.export == nil { try EmbeddingExportRecords.retractAll(definition.name, now: call.now, in: database) }
            try services.vectors.install(definition, services: services, from: database)
            try AuditLog.append(call.event("collection.define", purpose: definition.purpose.rawValue, detail: "collection=\(definition.name)"),
                                to: database)
            return outcome
        }
        if definition.export == nil { services.exportsRetracted() }
        switch outcome {
        case .created: return (true, 0)
        case .updated: return (false, services.vectors.collection(definition.name)?.index.count ?? 0)
        case .inUse(let count):
            throw DomainError(.conflict, code: "collection_in_use",
                              detail: "\(count) vectors have this collection's dimension, metric, purpose and index; define a new collection instead")
        }
    }

    /// The collection `text` names, or 404 `unknown_collection`.
    static func collection(named text: String, services: NodeServices) throws(DomainError) -> VectorCollections.Collection {
        guard let name = try? Name(text, what: "collection name"), let collection = services.vectors.collection(name) else {
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

    /// Stores the subject's vector under consent for the collection's purpose and indexes it.
    static func write(_ vector: [Float], for pid: PID, in collection: VectorCollections.Collection, call: CallContext) async throws {
        let services = call.services
        try await services.writeAudited(call, action: "vector.write", pid: pid, purpose: collection.definition.purpose.rawValue) { database in
            try store(vector, for: pid, in: collection, call: call, in: database)
        }
        written(to: collection, count: 1, services: services)
    }

    /// A vector to write in a batch: its subject and vector, or the refusal
    /// its fields get alone (the pid, if it names one, for the audit).
    struct BatchEntry: Sendable {
        let pidText: String
        let checked: Result<(pid: PID, vector: [Float]), DomainError>
    }

    /// Writes every entry as `write` would, in one transaction, each undone
    /// alone when refused: an entry refused (no consent, unknown subject,
    /// another region's pid, a bad vector) is its result, not the batch's, and is
    /// audited as its single call would be (`vector.write` refused in the
    /// transaction, `request.refused` with `refusalDetail` before it).
    static func writeBatch(_ entries: [BatchEntry], in collection: VectorCollections.Collection, refusalDetail: String,
                           call: CallContext) async throws -> [Result<PID, DomainError>] {
        let services = call.services
        try BatchItems.checkCount(entries.count, field: "vectors", services: services)
        let region = services.region
        // The batch's links, made in the background while the writer goes on
        // (`storeBatch`): awaited before the answer, whether it commits or not.
        let links = Locked(LinkTicket.done)
        let outcome: BatchOutcome
        do {
            outcome = try await services.store.write { database in
                try storeBatch(entries, in: collection, refusalDetail: refusalDetail, call: call, links: links, in: database)
            }
            await links.withLock { $0 }.linked()
        } catch {
            // Out of the index first (the resynchronization waits for the links on the writer thread).
            try? await services.resynchronizeVectors(of: Refusals.subjects(named: entries.map(\.pidText), region: region))
            await links.withLock { $0 }.linked()
            throw error
        }
        // A refused entry's savepoint rolled back its row, perhaps not its index entry.
        let refused = zip(entries, outcome.results).compactMap { entry, result -> String? in
            if case .failure = result, case .success = entry.checked { return entry.pidText }
            return nil
        }
        try await services.resynchronizeVectors(of: Refusals.subjects(named: refused, region: region))
        for event in outcome.events { services.metrics.countAudit(action: event.action, outcome: event.outcome) }
        let count = outcome.results.filter { if case .success = $0 { true } else { false } }.count
        written(to: collection, count: count, services: services)
        return outcome.results
    }

    /// Each batch entry's result, and the refusal events written for those refused.
    private struct BatchOutcome: Sendable {
        var results: [Result<PID, DomainError>] = []
        var events: [AuditEvent] = []
    }

    /// Stores a batch's entries in the caller's transaction (`BatchItems.runAll`),
    /// and audits each refused one as its single call would be.
    ///
    /// The rows are written first and the vectors stored then placed in the
    /// index together, to be linked into the graph on every core in the
    /// background (`upsertAllLinkingInBackground`; the ticket goes to
    /// `links`): the graph insert is most of an item's work, and on the
    /// writer thread one at a time it bounded a load. Meanwhile the writer
    /// stores the next transactions' rows; the index's next write waits for
    /// the links, so the index still changes in the writer's order. The
    /// index takes every stored vector or none; when it has no room for them
    /// all, the batch is written again item by item, so that the items it
    /// has room for succeed, as their single calls would, and the others are
    /// refused `collection_full`.
    private static func storeBatch(_ entries: [BatchEntry], in collection: VectorCollections.Collection, refusalDetail: String,
                                   call: CallContext, links: Locked<LinkTicket>, in database: Database) throws -> BatchOutcome {
        try database.execute("SAVEPOINT vector_batch")
        let (together, stored) = try BatchItems.runAll(in: database) { runItem in
            var stored: [VectorItem] = []
            let outcome = try storeEntries(entries, in: collection, refusalDetail: refusalDetail, call: call, runItem: runItem,
                                           in: database) { item in stored.append(item) }
            return (outcome, stored)
        }
        do throws(VectorError) {
            if !stored.isEmpty {
                let ticket = try collection.index.upsertAllLinkingInBackground(stored,
                                                                              threads: stored.count >= parallelLinkMin ? System.coreCount : 1)
                links.withLock { $0 = ticket }
            }
        } catch {
            try database.execute("ROLLBACK TO vector_batch")
            try database.execute("RELEASE vector_batch")
            return try storeEntries(entries, in: collection, refusalDetail: refusalDetail, call: call, runItem: .savepointPerItem(database),
                                    in: database) { item throws(DomainError) in try index(item, in: collection) }
        }
        try database.execute("RELEASE vector_batch")
        return together
    }

    /// Stored vectors in a batch at least, for its links to be made on
    /// every core (fewer are linked on the writer thread, as a single call's).
    static let parallelLinkMin = 64

    /// Stores each entry through `runItem` (`BatchItems.runAll`), audits
    /// each refused one, and hands each stored vector to `index` (whose
    /// refusal refuses the entry). An entry's subject and consent are
    /// checked before it writes, outside `runItem`: their refusals undo
    /// nothing.
    private static func storeEntries(_ entries: [BatchEntry], in collection: VectorCollections.Collection, refusalDetail: String,
                                     call: CallContext, runItem: BatchItems.ItemRunner, in database: Database,
                                     index: (VectorItem) throws(DomainError) -> Void) throws -> BatchOutcome {
        let purpose = collection.definition.purpose.rawValue
        var outcome = BatchOutcome()
        for entry in entries {
            let result: Result<PID, DomainError>
            var event: AuditEvent?
            switch entry.checked {
            case .failure(let refusal):
                // Refused before the transaction: as `RefusalAudit` audits the single call.
                result = .failure(refusal)
                event = Refusals.subjects(named: [entry.pidText], region: call.services.region).first.map { pid in
                    call.event(Refusals.action, pid: pid.rawValue, outcome: Refusals.outcome(refusal.code), detail: refusalDetail)
                }
            case .success(let (pid, vector)):
                // Refused in the transaction: as `writeAudited` audits the single call.
                do {
                    let admitted = try admit(pid, to: collection, call: call, in: database)
                    result = try runItem {
                        try index(try record(vector, for: pid, admitted, in: collection, call: call, in: database))
                    }.map { pid }
                } catch let refusal as DomainError {
                    result = .failure(refusal)
                }
                if case .failure(let refusal) = result {
                    event = call.event("vector.write", pid: pid.rawValue, purpose: purpose, outcome: Refusals.outcome(refusal.code))
                }
            }
            if let event {
                try AuditLog.append(event, to: database)
                outcome.events.append(event)
            }
            outcome.results.append(result)
        }
        return outcome
    }

    /// Stores and indexes one vector in the caller's transaction, audited;
    /// refused (`DomainError`) without the subject, or without consent.
    private static func store(_ vector: [Float], for pid: PID, in collection: VectorCollections.Collection, call: CallContext,
                              in database: Database) throws {
        let admitted = try admit(pid, to: collection, call: call, in: database)
        try index(try record(vector, for: pid, admitted, in: collection, call: call, in: database), in: collection)
    }

    /// What a vector write needs once its refusals are behind it.
    private struct Admitted {
        let key: AESGCMKey
        let grants: [Purpose: ActiveConsent]
        let grounds: ConsentGate.Grounds
    }

    /// The subject's key and the consent that covers the collection's
    /// purpose, read in the caller's transaction; refused (`DomainError`)
    /// without the subject, or without consent. Writes nothing.
    private static func admit(_ pid: PID, to collection: VectorCollections.Collection, call: CallContext,
                              in database: Database) throws -> Admitted {
        let services = call.services
        guard let key = try SubjectRecords.key(of: pid, keys: services.keys, in: database) else { throw DomainError.unknownSubject() }
        let grants = try ConsentRecords.activeGrants(of: pid, in: database)
        let grounds = try services.consentGate.requireCoverage(of: collection.definition.purpose, grants: grants, now: call.now)
        return Admitted(key: key, grants: grants, grounds: grounds)
    }

    /// Stores one admitted vector in the caller's transaction, audited, and
    /// returns it as the index takes it (with its consent's eligibility deadline).
    private static func record(_ vector: [Float], for pid: PID, _ admitted: Admitted, in collection: VectorCollections.Collection,
                               call: CallContext, in database: Database) throws -> VectorItem {
        let services = call.services
        let definition = collection.definition
        let purpose = definition.purpose
        let grants = admitted.grants
        var random = services.random.generator()
        try VectorRecords.write(vector, collection: definition.name, pid: pid, key: admitted.key, grounds: admitted.grounds, now: call.now,
                                using: &random, in: database)
        try AuditLog.append(call.event("vector.write", pid: pid.rawValue, purpose: purpose.rawValue,
                                          detail: "collection=\(definition.name)"), to: database)
        return VectorItem(label: pid.rawValue, vector: vector, eligibleUntil: services.consentGate.eligibleUntil(purpose, grants: grants))
    }

    /// Puts one stored vector in the collection's index; 507 `collection_full` when it has no room.
    private static func index(_ item: VectorItem, in collection: VectorCollections.Collection) throws(DomainError) {
        do throws(VectorError) {
            try collection.index.upsert(item.label, vector: item.vector, eligibleUntil: item.eligibleUntil)
        } catch {
            throw DomainError(.noRoom, code: "collection_full", detail: error.description)
        }
    }

    /// After `count` vectors were written to the collection: a new version to
    /// export (the federation's next round, now).
    private static func written(to collection: VectorCollections.Collection, count: Int, services: NodeServices) {
        guard count > 0 else { return }
        if collection.definition.export != nil { services.federation.value?.vectorsChanged() }
        services.calibrations.noteWrites(count, to: collection)
    }

    /// Removes the subject's vector from the collection (absent is not an error).
    static func delete(_ pid: PID, from collection: VectorCollections.Collection, call: CallContext) async throws {
        let services = call.services
        let name = collection.definition.name
        try await services.writeAudited(call, action: "vector.delete", pid: pid) { database in
            let deleted = try VectorRecords.delete(collection: name, pid: pid, now: call.now, in: database)
            collection.index.remove(pid.rawValue)
            try AuditLog.append(call.event("vector.delete", pid: pid.rawValue, outcome: deleted ? "ok" : "absent",
                                              detail: "collection=\(name)"), to: database)
        }
        if collection.definition.export != nil { services.exportsRetracted() }
        services.calibrations.noteWrites(1, to: collection)
    }

    /// A search must say the purpose the collection serves (403 `purpose_mismatch`).
    static func checkPurpose(_ purpose: Purpose, of collection: VectorCollections.Collection) throws(DomainError) {
        let served = collection.definition.purpose
        guard purpose == served else {
            throw DomainError(.refused, code: "purpose_mismatch", detail: "this collection serves \(served), not \(purpose)")
        }
    }

    /// What a search looks for: a vector, or the stored vector of a subject (its example).
    enum Query: Sendable {
        case vector([Float])
        case example(PID)
    }

    /// The `k` nearest eligible vectors to `query` in the collection, for
    /// `purpose` (the collection's); a search by example excludes the
    /// example and needs it eligible now. Audited (`scope` in the detail).
    static func search(_ query: Query, k: Int, ef: Int?, purpose: Purpose, in collection: VectorCollections.Collection,
                       call: CallContext) async throws -> [SearchHit] {
        let local = try await searchUnaudited(query, k: k, ef: ef, purpose: purpose, in: collection, call: call)
        try await auditSearch(local, returned: local.hits.count, scope: "local", in: collection, call: call)
        return local.hits
    }

    /// A local search's hits, the vector it searched with, and the example it excluded.
    struct LocalSearch: Sendable {
        let hits: [SearchHit]
        let vector: [Float]
        let example: PID?
    }

    /// The local search, audited only when its example is refused (the
    /// caller audits the search with what it returns).
    static func searchUnaudited(_ query: Query, k: Int, ef: Int?, purpose: Purpose, in collection: VectorCollections.Collection,
                                call: CallContext) async throws -> LocalSearch {
        let services = call.services
        let definition = collection.definition
        try checkPurpose(purpose, of: collection)
        let now = call.now.milliseconds
        let vector: [Float]
        var example: PID?
        switch query {
        case .vector(let values):
            vector = values
        case .example(let pid):
            // A search by example processes the example's subject too: its vector must be eligible now.
            guard let stored = collection.index.vector(of: pid.rawValue), collection.index.isEligible(pid.rawValue, now: now) else {
                try await services.audit(call.event("vector.search", pid: pid.rawValue, purpose: purpose.rawValue, outcome: "not_found",
                                                    detail: "collection=\(definition.name)"))
                call.refusals.markAudited()
                throw DomainError(.notFound, code: "unknown_vector", detail: "no eligible vector for this pid in the collection")
            }
            vector = stored
            example = pid
        }
        let exclude = example?.rawValue
        let wanted = k + (exclude == nil ? 0 : 1)
        let result = try collection.index.search(vector, k: wanted, ef: ef ?? services.calibrations.searchEF(collection), now: now)
        services.metrics.increment("domicile_vector_searches_total", labels: ["plan": result.plan.rawValue])
        return LocalSearch(hits: Array(result.hits.filter { $0.label != exclude }.prefix(k)), vector: vector, example: example)
    }

    /// Audits a search: its example (if any), purpose, collection, scope and the count returned.
    static func auditSearch(_ search: LocalSearch, returned: Int, scope: String, in collection: VectorCollections.Collection,
                            call: CallContext) async throws {
        try await call.services.audit(call.event("vector.search", pid: search.example?.rawValue, purpose: collection.definition.purpose.rawValue,
                                                 detail: "collection=\(collection.definition.name),scope=\(scope),returned=\(returned)"))
    }
}
