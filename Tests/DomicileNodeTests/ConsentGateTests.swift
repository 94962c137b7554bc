@testable import DomicileNode
import DomicileModel
import DomicilePrivacy
import DomicileStorage
import DomicileTestSupport
import XCTest

/// The consent gate is the one rule; aggregate scans use its SQL form and
/// the vector indexes its eligibility deadlines. On randomized consent
/// histories (grants with and without expiry, revocations, GPC signals) all
/// three must say the same for every subject, purpose and time.
final class ConsentGateTests: XCTestCase {
    let directory = TemporaryDirectory("consent-gate")
    let eu = try! RegionID("eu")
    static let policyText = """
        {
          "version": 1,
          "regions": {"eu": {"countries": ["DE"], "jurisdiction": "gdpr"}, "us": {"countries": ["US"], "jurisdiction": "cpra"}},
          "purposes": {
            "product_recs": {"basis": {"eu": "consent", "us": "consent"}, "gpc": true},
            "analytics": {"basis": {"eu": "consent", "us": "legitimate_interest"}},
            "billing": {"basis": {"eu": "contract", "us": "contract"}},
            "us_only": {"basis": {"us": "consent"}}
          },
          "transfers": []
        }
        """

    func test_sqlFilterAndEligibility_agreeWithTheGate_onRandomizedHistories() throws {
        let policy = try ResidencyPolicy(json: Array(Self.policyText.utf8))
        let gate = ConsentGate(policy: policy, region: eu)
        let purposes = try ["product_recs", "analytics", "billing", "us_only", "not_in_policy"].map { try Purpose($0) }
        for seed in UInt64(1)...12 {
            var random = SeededRandom(seed: seed)
            let database = try Database(path: directory.file("gate-\(seed).sqlite"))
            _ = try NodeSchema.migrator.migrate(database, appliedAt: 0)
            let pids = (0..<10).map { PID(keyVersion: 1, region: eu, digest: [UInt8](repeating: UInt8($0), count: PID.digestByteCount)) }
            for pid in pids {
                try database.execute("""
                    INSERT INTO subjects (pid, key_version, link, link_version, wrapped_key, created_at) VALUES (?, 1, ?, 1, ?, 0)
                    """, [pid.rawValue, Array(pid.rawValue.utf8), [UInt8](repeating: 2, count: 60)])
            }
            var heads = Dictionary(uniqueKeysWithValues: pids.map { ($0, (seq: Int64(0), hash: ReceiptChain.genesis)) })
            var time: Int64 = 1_000
            for step in 0..<60 {
                time += Int64.random(in: 1...100, using: &random)
                let pid = pids.randomElement(using: &random)!
                let action = [ConsentAction.grant, .grant, .revoke, .gpc].randomElement(using: &random)!
                let chosen = action == .gpc ? [] : Array(purposes.prefix(4).shuffled(using: &random).prefix(Int.random(in: 1...2, using: &random)))
                let expiry = action == .grant && Bool.random(using: &random) ? Timestamp(milliseconds: time + Int64.random(in: 1...2_000, using: &random)) : nil
                let head = heads[pid]!
                let receipt = ConsentReceipt.make(receiptID: "cr_\(seed)_\(step)", pid: pid, seq: head.seq + 1, action: action, purposes: chosen,
                                                  basis: action == .grant ? .consent : nil, source: "test", collectedAt: Timestamp(milliseconds: time),
                                                  expiresAt: expiry, recordedAt: Timestamp(milliseconds: time), previousHash: head.hash)
                try ConsentRecords.append(receipt, gpcPurposes: policy.gpcPurposes, now: Timestamp(milliseconds: time), in: database)
                heads[pid] = (receipt.seq, receipt.hash)
                // Probe now and then, at times around the grants' expiries.
                guard step % 6 == 5 else { continue }
                for _ in 0..<4 {
                    let now = Timestamp(milliseconds: time + Int64.random(in: -500...2_500, using: &random))
                    for purpose in purposes {
                        let (condition, arguments) = gate.sqlFilter(purpose, pid: "s.pid", now: now)
                        let bySQL = Set(try database.fetchAll("SELECT s.pid FROM subjects s WHERE \(condition)", arguments) { $0.text(0) })
                        for pid in pids {
                            let grants = try ConsentRecords.activeGrants(of: pid, in: database)
                            let covered = gate.coverage(of: purpose, grants: grants, now: now).isCovered
                            let context = "seed \(seed), step \(step), \(purpose) at \(now.milliseconds)"
                            XCTAssertEqual(bySQL.contains(pid.rawValue), covered, "SQL filter and gate disagree: \(context)")
                            XCTAssertEqual(gate.eligibleUntil(purpose, grants: grants) > now.milliseconds, covered,
                                           "eligibility deadline and gate disagree: \(context)")
                        }
                    }
                }
            }
        }
    }

    func test_requireCoverage_namesEveryUncoveredPurpose_andRefuses() throws {
        let gate = ConsentGate(policy: try ResidencyPolicy(json: Array(Self.policyText.utf8)), region: eu)
        let purposes = try Set(["product_recs", "analytics", "billing"].map { try Purpose($0) })
        XCTAssertThrowsError(try gate.requireCoverage(of: purposes, grants: [:], now: Timestamp(milliseconds: 0))) { error in
            let refusal = error as? DomainError
            XCTAssertEqual(refusal?.code, "consent_required")
            XCTAssertEqual(refusal?.kind, .refused)
            XCTAssertTrue(refusal?.detail.contains("analytics, product_recs") ?? false, refusal?.detail ?? "")
        }
        let billing = try Purpose("billing")
        XCTAssertEqual(try gate.requireCoverage(of: billing, grants: [:], now: Timestamp(milliseconds: 0)), ConsentGate.Grounds(basis: .contract, receiptID: nil))
    }
}
