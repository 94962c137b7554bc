import DomicileCrypto
import DomicileModel
import DomicilePrivacy
import DomicileStorage

/// Subjects: registration in their home region, lookup by identifier, and
/// what a subject's record says.
enum SubjectService {
    /// The home region named by `region` or `country`, through the policy.
    static func homeRegion(country: String?, region: String?, policy: ResidencyPolicy) throws(DomainError) -> RegionID {
        switch (country, region) {
        case (nil, let name?):
            guard let region = try? RegionID(name), policy.isKnown(region) else {
                throw DomainError.unknownRegion("region: the policy has no such region")
            }
            return region
        case (let code?, nil):
            guard let country = try? CountryCode(code), let region = policy.region(forCountry: country) else {
                throw DomainError.unknownRegion("country: no region of the policy covers this country (use ISO 3166-1 alpha-2)")
            }
            return region
        default:
            throw DomainError.invalid("country, region", "give exactly one of them")
        }
    }

    /// Registers the subject `identifier` names in `home`, or finds it
    /// registered. Returns its pid and whether it was created.
    static func register(_ identifier: Identifier, home: RegionID, call: CallContext) async throws -> (pid: PID, created: Bool) {
        let services = call.services
        try checkHome(home, services: services)
        let (pid, created) = try await services.store.write { try record(identifier, call: call, in: $0) }
        services.metrics.countAudit(action: "subject.register", outcome: created ? "created" : "existing")
        return (pid, created)
    }

    /// A subject to register in a batch: its identifier and home region, or
    /// the refusal its fields get alone.
    typealias BatchEntry = Result<(identifier: Identifier, home: RegionID), DomainError>

    /// Registers every entry as `register` would, in one transaction, each
    /// undone alone when refused (`BatchItems.runAll`): one entry's refusal
    /// (another region's subject: `misdirected`) is its result, not the batch's.
    static func registerBatch(_ entries: [BatchEntry], call: CallContext) async throws -> [Result<(pid: PID, created: Bool), DomainError>] {
        let services = call.services
        try BatchItems.checkCount(entries.count, field: "subjects", services: services)
        let checked = entries.map { entry -> BatchEntry in
            guard case .success(let fields) = entry else { return entry }
            do throws(DomainError) { try checkHome(fields.home, services: services) } catch { return .failure(error) }
            return entry
        }
        let results = try await services.store.write { database in
            try BatchItems.runAll(in: database) { runItem in
                try checked.map { entry -> Result<(pid: PID, created: Bool), DomainError> in
                    switch entry {
                    case .failure(let refusal): return .failure(refusal)
                    case .success(let entry): return try runItem { try record(entry.identifier, call: call, in: database) }
                    }
                }
            }
        }
        for case .success(let (_, created)) in results {
            services.metrics.countAudit(action: "subject.register", outcome: created ? "created" : "existing")
        }
        return results
    }

    /// The identifier must reach the right region from the client: it is
    /// never carried across the border by this node (421 otherwise).
    private static func checkHome(_ home: RegionID, services: NodeServices) throws(DomainError) {
        guard home == services.region else { throw DomainError.misdirected(home: home, nodes: services.liveNodes(in: home)) }
    }

    /// Registers or finds the subject in the caller's transaction, audited.
    private static func record(_ identifier: Identifier, call: CallContext, in database: Database) throws -> (pid: PID, created: Bool) {
        let services = call.services
        let candidates = services.keys.pseudonymizers.candidates(for: identifier)
        if let existing = try SubjectRecords.find(candidates, keys: services.keys, in: database) {
            try AuditLog.append(call.event("subject.register", pid: existing.pid.rawValue, outcome: "existing"), to: database)
            return (existing.pid, false)
        }
        let pid = candidates[0]
        if try SubjectRecords.exists(pid, in: database) {
            // What is left of an erased subject whose key is destroyed (a restored copy): erase it before the new one.
            _ = try ErasureRecords.eraseSubject(pid, vectors: services.vectors, now: call.now, in: database)
        }
        var random = services.random.generator()
        try SubjectRecords.insert(pid: pid, identifier: identifier, keys: services.keys, now: call.now, using: &random, in: database)
        try AuditLog.append(call.event("subject.register", pid: pid.rawValue, outcome: "created"), to: database)
        return (pid, true)
    }

    /// The pid of the subject `identifier` names in this region.
    static func lookup(_ identifier: Identifier, call: CallContext) async throws -> PID {
        let services = call.services
        let candidates = services.keys.pseudonymizers.candidates(for: identifier)
        let found = try services.store.read { try SubjectRecords.find(candidates, keys: services.keys, in: $0) }
        try await services.audit(call.event("subject.lookup", pid: found?.pid.rawValue, outcome: found == nil ? "not_found" : "ok"))
        guard let found else { throw DomainError.unknownSubject() }
        return found.pid
    }

    /// A subject's record and the purposes in force for it now.
    static func read(_ pid: PID, call: CallContext) async throws -> (row: SubjectRow, active: [ActiveConsent]) {
        let services = call.services
        let (row, grants) = try await services.readSubject(pid, action: "subject.read", call: call) { database in
            (try SubjectRecords.find(pid, keys: services.keys, in: database), try ConsentRecords.activeGrants(of: pid, in: database))
        }
        guard let row else { throw DomainError.unknownSubject() }
        let active = ConsentService.inForce(grants, services: services, now: call.now)
        try await services.audit(call.event("subject.read", pid: pid.rawValue))
        return (row, active)
    }
}
