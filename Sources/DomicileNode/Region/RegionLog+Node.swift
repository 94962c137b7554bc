import DomicileConsensus
import DomicileModel
import DomicileStorage
import Foundation

extension RegionLog {
    struct Misconfigured: Error, CustomStringConvertible {
        let description: String
    }

    /// The node's region log, after checking that the roster lists this
    /// node of this region with the signing key of its keyring, from where
    /// node.sqlite has applied it.
    static func open(configuration: NodeConfiguration.RegionLog, roster: RegionRoster, services: NodeServices,
                     random: any RandomSource) throws -> RegionLog {
        let node = services.configuration.node
        guard roster.region == services.region else {
            throw Misconfigured(description: "the roster lists region \(roster.region), not this node's \(services.region)")
        }
        guard let listed = roster.node(node) else { throw Misconfigured(description: "the roster does not list \(node)") }
        guard listed.publicKey.rawRepresentation == services.keys.signing.publicKey.rawRepresentation else {
            throw Misconfigured(description: "the roster's key for \(node) is not the signing key of its keyring")
        }
        let applied = try services.store.read { try RegionLogRecords.applied(in: $0) }
        return try RegionLog(name: node, settings: configuration, roster: roster, dataDirectory: services.configuration.dataDirectory,
                             applied: applied, store: services.store, random: random,
                             now: services.clock.now().milliseconds / 1_000, logger: services.logger,
                             follower: try RegionFollower(services: services))
    }
}

extension RegionLog {
    /// `domicile cluster recover` leaves this file in the data directory;
    /// the recovered node records the recovery in the region's audit log
    /// once it leads, then removes the file.
    static let recoveryMarker = RegionRecovery.markerName

    func recordRecovery(services: NodeServices) {
        let marker = (dataDirectory as NSString).appendingPathComponent(Self.recoveryMarker)
        guard let bytes = try? FileIO.read(marker, byteCountMax: 64 * 1_024) else { return }
        let detail = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        Task {
            while !isServingLeader {
                guard status.role != .follower || status.leader == nil else { return }
                try? await Task.sleep(nanoseconds: 100_000_000)
            }
            do {
                try await services.audit(AuditEvent(at: services.clock.now(), principal: "operator", action: "region_log.recover",
                                                    pid: nil, purpose: nil, outcome: "ok", requestID: nil, detail: detail))
                unlink(marker)
                logger.warning("region log recovered", ["detail": .string(detail)])
            } catch {
                logger.error("region log recovery not audited yet", ["error": .string("\(type(of: error))")])
            }
        }
    }
}
