import DomicileModel
import DomicilePrivacy
import XCTest

final class ConsentTests: XCTestCase {
    let pid = PID(keyVersion: 1, region: try! RegionID("eu"), digest: [UInt8](repeating: 7, count: 32))
    let recs = try! Purpose("product_recs")
    let mail = try! Purpose("marketing_email")
    let analytics = try! Purpose("analytics")

    func chain(_ steps: [(ConsentAction, [Purpose], Int64, Int64?)]) -> [ConsentReceipt] {
        var receipts: [ConsentReceipt] = []
        for (offset, step) in steps.enumerated() {
            receipts.append(ConsentReceipt.make(
                receiptID: "r\(offset)", pid: pid, seq: Int64(offset + 1), action: step.0, purposes: step.1,
                basis: step.0 == .grant ? .consent : nil, source: "test", collectedAt: Timestamp(seconds: step.2),
                expiresAt: step.3.map(Timestamp.init(seconds:)), recordedAt: Timestamp(seconds: step.2),
                previousHash: receipts.last?.hash ?? ReceiptChain.genesis))
        }
        return receipts
    }

    func active(_ receipts: [ConsentReceipt], at seconds: Int64) -> [Purpose] {
        ConsentFolding.active(receipts, gpcPurposes: [recs, mail], knownPurposes: [recs, mail, analytics],
                              now: Timestamp(seconds: seconds)).keys.sorted()
    }

    func test_folding_grantRevokeGPCAndExpiry() {
        let receipts = chain([
            (.grant, [recs, mail, analytics], 100, nil),
            (.revoke, [mail], 200, nil),
            (.grant, [mail], 300, 400),
            (.gpc, [], 500, nil),
            (.grant, [recs], 600, nil),
        ])
        XCTAssertEqual(active(Array(receipts.prefix(1)), at: 150), [analytics, mail, recs])
        XCTAssertEqual(active(Array(receipts.prefix(2)), at: 250), [analytics, recs])
        XCTAssertEqual(active(Array(receipts.prefix(3)), at: 350), [analytics, mail, recs])
        XCTAssertEqual(active(Array(receipts.prefix(3)), at: 400), [analytics, recs], "expiry is exclusive")
        XCTAssertEqual(active(Array(receipts.prefix(4)), at: 550), [analytics], "gpc revokes only gpc purposes")
        XCTAssertEqual(active(receipts, at: 650), [analytics, recs])
    }

    func test_folding_dropsPurposesThePolicyNoLongerKnows() {
        let receipts = chain([(.grant, [recs, analytics], 100, nil)])
        let active = ConsentFolding.active(receipts, gpcPurposes: [], knownPurposes: [recs], now: Timestamp(seconds: 200))
        XCTAssertEqual(Array(active.keys), [recs])
        XCTAssertEqual(active[recs]?.receiptID, "r0")
    }

    func test_receiptChain_verifiesAndDetectsEveryKindOfTampering() {
        let receipts = chain([(.grant, [recs], 100, nil), (.revoke, [recs], 200, nil), (.grant, [mail], 300, 900)])
        XCTAssertTrue(ReceiptChain.verify(receipts))
        XCTAssertFalse(ReceiptChain.verify(Array(receipts.dropFirst())), "a removed first receipt")
        XCTAssertFalse(ReceiptChain.verify([receipts[0], receipts[2]]), "a removed middle receipt")
        XCTAssertFalse(ReceiptChain.verify([receipts[1], receipts[0], receipts[2]]), "reordered")
        let edited = receipts[1]
        let forged = ConsentReceipt(receiptID: edited.receiptID, pid: edited.pid, seq: edited.seq, action: .grant,
                                    purposes: edited.purposes, basis: .consent, source: edited.source, collectedAt: edited.collectedAt,
                                    expiresAt: nil, recordedAt: edited.recordedAt, previousHash: edited.previousHash, hash: edited.hash)
        XCTAssertFalse(ReceiptChain.verify([receipts[0], forged, receipts[2]]), "edited content under the old hash")
    }

    func test_receiptChain_stillVerifiesWithRedactedReceipts() {
        let receipts = chain([(.grant, [recs], 100, nil), (.revoke, [recs], 200, nil)])
        let redacted = receipts.map { receipt in
            ConsentReceipt(receiptID: receipt.receiptID, pid: receipt.pid, seq: receipt.seq, action: .revoke, purposes: [], basis: nil,
                           source: "", collectedAt: Timestamp(milliseconds: 0), expiresAt: nil, recordedAt: Timestamp(milliseconds: 0),
                           previousHash: receipt.previousHash, hash: receipt.hash, redacted: true)
        }
        XCTAssertTrue(ReceiptChain.verify(redacted))
        XCTAssertFalse(ReceiptChain.verify([redacted[1], redacted[0]]))
    }

    func test_receiptHash_coversEveryField() {
        let base = ConsentReceipt.make(receiptID: "r", pid: pid, seq: 1, action: .grant, purposes: [recs], basis: .consent, source: "s",
                                       collectedAt: Timestamp(seconds: 1), expiresAt: nil, recordedAt: Timestamp(seconds: 2),
                                       previousHash: ReceiptChain.genesis)
        let variants = [
            ConsentReceipt.make(receiptID: "x", pid: pid, seq: 1, action: .grant, purposes: [recs], basis: .consent, source: "s",
                                collectedAt: Timestamp(seconds: 1), expiresAt: nil, recordedAt: Timestamp(seconds: 2), previousHash: ReceiptChain.genesis),
            ConsentReceipt.make(receiptID: "r", pid: pid, seq: 1, action: .grant, purposes: [mail], basis: .consent, source: "s",
                                collectedAt: Timestamp(seconds: 1), expiresAt: nil, recordedAt: Timestamp(seconds: 2), previousHash: ReceiptChain.genesis),
            ConsentReceipt.make(receiptID: "r", pid: pid, seq: 1, action: .grant, purposes: [recs], basis: .contract, source: "s",
                                collectedAt: Timestamp(seconds: 1), expiresAt: nil, recordedAt: Timestamp(seconds: 2), previousHash: ReceiptChain.genesis),
            ConsentReceipt.make(receiptID: "r", pid: pid, seq: 1, action: .grant, purposes: [recs], basis: .consent, source: "s",
                                collectedAt: Timestamp(seconds: 1), expiresAt: Timestamp(seconds: 9), recordedAt: Timestamp(seconds: 2),
                                previousHash: ReceiptChain.genesis),
            ConsentReceipt.make(receiptID: "r", pid: pid, seq: 1, action: .grant, purposes: [recs], basis: .consent, source: "t",
                                collectedAt: Timestamp(seconds: 1), expiresAt: nil, recordedAt: Timestamp(seconds: 2), previousHash: ReceiptChain.genesis),
        ]
        for variant in variants { XCTAssertNotEqual(variant.hash, base.hash) }
    }
}
