import DomicileCrypto
import DomicileModel

public enum ConsentAction: String, Codable, Sendable, CaseIterable {
    /// Grants the listed purposes.
    case grant
    /// Revokes the listed purposes.
    case revoke
    /// A Global Privacy Control signal: revokes every purpose the policy marks `gpc`.
    case gpc
}

/// An immutable record of a grant, revocation or GPC signal. Receipts of a
/// subject form a hash chain: each receipt's hash covers its content and the
/// previous receipt's hash, so a removed, reordered or edited receipt breaks
/// every later hash.
public struct ConsentReceipt: Sendable, Equatable {
    public let receiptID: String
    public let pid: PID
    /// 1, 2, 3… per subject.
    public let seq: Int64
    public let action: ConsentAction
    /// Sorted, without duplicates.
    public let purposes: [Purpose]
    public let basis: LawfulBasis?
    /// Where the consent was collected (`web-portal:v2`).
    public let source: String
    public let collectedAt: Timestamp
    public let expiresAt: Timestamp?
    /// When this node recorded it.
    public let recordedAt: Timestamp
    public let previousHash: [UInt8]
    public let hash: [UInt8]
    /// After erasure only the hash links remain: content is gone.
    public let redacted: Bool

    public init(receiptID: String, pid: PID, seq: Int64, action: ConsentAction, purposes: [Purpose], basis: LawfulBasis?,
                source: String, collectedAt: Timestamp, expiresAt: Timestamp?, recordedAt: Timestamp,
                previousHash: [UInt8], hash: [UInt8], redacted: Bool = false) {
        self.receiptID = receiptID
        self.pid = pid
        self.seq = seq
        self.action = action
        self.purposes = purposes
        self.basis = basis
        self.source = source
        self.collectedAt = collectedAt
        self.expiresAt = expiresAt
        self.recordedAt = recordedAt
        self.previousHash = previousHash
        self.hash = hash
        self.redacted = redacted
    }

    /// A new receipt linked after `previousHash`, its hash computed.
    public static func make(receiptID: String, pid: PID, seq: Int64, action: ConsentAction, purposes: [Purpose],
                            basis: LawfulBasis?, source: String, collectedAt: Timestamp, expiresAt: Timestamp?,
                            recordedAt: Timestamp, previousHash: [UInt8]) -> ConsentReceipt {
        let purposes = Array(Set(purposes)).sorted()
        let unhashed = ConsentReceipt(receiptID: receiptID, pid: pid, seq: seq, action: action, purposes: purposes, basis: basis,
                                      source: source, collectedAt: collectedAt, expiresAt: expiresAt, recordedAt: recordedAt,
                                      previousHash: previousHash, hash: [])
        return ConsentReceipt(receiptID: receiptID, pid: pid, seq: seq, action: action, purposes: purposes, basis: basis,
                              source: source, collectedAt: collectedAt, expiresAt: expiresAt, recordedAt: recordedAt,
                              previousHash: previousHash, hash: ReceiptChain.hash(of: unhashed))
    }
}

/// The receipt hash chain (docs/FORMATS.md, "Consent receipt hash").
public enum ReceiptChain {
    /// The `previous hash` of a subject's first receipt.
    public static let genesis = [UInt8](repeating: 0, count: SHA256.byteCount)
    static let domain = "domicile/consent-receipt/v1"

    /// SHA-256 of the receipt's canonical encoding, which includes the previous hash.
    public static func hash(of receipt: ConsentReceipt) -> [UInt8] {
        var writer = BinaryWriter(capacity: 256)
        writer.write8(string: domain)
        writer.write8(string: receipt.receiptID)
        writer.write8(string: receipt.pid.rawValue)
        writer.write(UInt64(bitPattern: receipt.seq))
        writer.write8(string: receipt.action.rawValue)
        writer.write(UInt16(receipt.purposes.count))
        for purpose in receipt.purposes { writer.write8(string: purpose.rawValue) }
        writer.write8(string: receipt.basis?.rawValue ?? "")
        writer.write8(string: receipt.source)
        writer.write(receipt.collectedAt.milliseconds)
        writer.write(UInt8(receipt.expiresAt == nil ? 0 : 1))
        writer.write(receipt.expiresAt?.milliseconds ?? 0)
        writer.write(receipt.recordedAt.milliseconds)
        writer.write(raw: receipt.previousHash)
        return SHA256.hash(writer.bytes)
    }

    /// True if `receipts` (one subject's, in seq order) form an unbroken chain:
    /// seq 1, 2, 3…, each linked to the previous hash, each hash matching its
    /// content. A redacted receipt keeps its links but has no content to check.
    public static func verify(_ receipts: [ConsentReceipt]) -> Bool {
        var previous = genesis
        for (offset, receipt) in receipts.enumerated() {
            guard receipt.seq == Int64(offset + 1), ConstantTime.equals(receipt.previousHash, previous) else { return false }
            if !receipt.redacted && !ConstantTime.equals(hash(of: receipt), receipt.hash) { return false }
            previous = receipt.hash
        }
        return true
    }
}
