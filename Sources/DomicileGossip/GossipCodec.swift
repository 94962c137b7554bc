import DomicileCrypto
import DomicileModel

/// The gossip wire format (docs/FORMATS.md, "Gossip packet").
///
/// Packet: `version(1) · pool(1) · nonce(12) · ciphertext · tag(16)`, at most
/// `packetBytesMax` bytes, AES-256-GCM under the pool's key with the first two
/// bytes as associated data. The primary key encrypts; every installed key is
/// tried to decrypt, so keys can be rotated without a flag day.
///
/// Plaintext: `count(1)`, then per message `type(1) · length(2) · body`.
/// A receiver skips message types it does not know (they are append-only,
/// so an older node ignores what a newer one adds).
public enum GossipCodec {
    public static let version: UInt8 = 1
    public static let packetOverhead = 2 + AESGCM.nonceByteCount + AESGCM.tagByteCount
    /// The largest incarnation a node sends or accepts. A member raises its
    /// own incarnation by one per refutation, so an honest one never comes
    /// near 2^62; a larger one is a peer's bug or malice and is refused
    /// here, and `refute` saturates at it, so no arithmetic on it can trap.
    public static let incarnationMax: UInt64 = 1 << 62
    /// Per message: type and length.
    static let messageHeaderBytes = 3

    public enum Failure: Error, Equatable, Sendable {
        case tooShort
        case unsupportedVersion(UInt8)
        case unknownPool(UInt8)
        case undecryptable
        case malformed(String)
    }

    // MARK: Messages

    public static func encode(_ messages: [GossipMessage]) -> [UInt8] {
        precondition(messages.count <= Int(UInt8.max), "at most 255 messages in a packet")
        var writer = BinaryWriter(capacity: 512)
        writer.write(UInt8(messages.count))
        for message in messages {
            var body = BinaryWriter(capacity: 96)
            encodeBody(message, into: &body)
            writer.write(message.kind.rawValue)
            writer.write16(prefixed: body.bytes)
        }
        return writer.bytes
    }

    /// The exact encoded size of one message, header included (for packing
    /// piggybacked broadcasts without encoding them twice).
    public static func encodedSize(_ message: GossipMessage) -> Int {
        func s(_ text: String) -> Int { 1 + text.utf8.count }
        let body: Int
        switch message {
        case .ping(_, let target, let source): body = 4 + s(target.rawValue) + s(source.rawValue)
        case .indirectPing(_, let target, let targetAddress, let requester, let requesterAddress):
            body = 4 + s(target.rawValue) + s(targetAddress) + s(requester.rawValue) + s(requesterAddress)
        case .ack(_, let source), .nack(_, let source): body = 4 + s(source.rawValue)
        case .alive(_, let identity): body = 8 + identitySize(identity)
        case .suspect(_, let name, let accuser), .dead(_, let name, let accuser): body = 8 + s(name.rawValue) + s(accuser.rawValue)
        }
        return messageHeaderBytes + body
    }

    /// Four u8-prefixed strings and the boot id.
    static func identitySize(_ identity: MemberIdentity) -> Int {
        4 + identity.name.rawValue.utf8.count + identity.region.rawValue.utf8.count + 8
            + identity.gossipAddress.utf8.count + identity.httpAddress.utf8.count
    }

    private static func encodeBody(_ message: GossipMessage, into writer: inout BinaryWriter) {
        switch message {
        case .ping(let seq, let target, let source):
            writer.write(seq)
            writer.write8(string: target.rawValue)
            writer.write8(string: source.rawValue)
        case .indirectPing(let seq, let target, let targetAddress, let requester, let requesterAddress):
            writer.write(seq)
            writer.write8(string: target.rawValue)
            writer.write8(string: targetAddress)
            writer.write8(string: requester.rawValue)
            writer.write8(string: requesterAddress)
        case .ack(let seq, let source), .nack(let seq, let source):
            writer.write(seq)
            writer.write8(string: source.rawValue)
        case .alive(let incarnation, let identity):
            writer.write(incarnation)
            encode(identity, into: &writer)
        case .suspect(let incarnation, let name, let accuser), .dead(let incarnation, let name, let accuser):
            writer.write(incarnation)
            writer.write8(string: name.rawValue)
            writer.write8(string: accuser.rawValue)
        }
    }

    static func encode(_ identity: MemberIdentity, into writer: inout BinaryWriter) {
        writer.write8(string: identity.name.rawValue)
        writer.write8(string: identity.region.rawValue)
        writer.write(identity.bootID)
        writer.write8(string: identity.gossipAddress)
        writer.write8(string: identity.httpAddress)
    }

    /// Decodes a plaintext packet. Unknown message types are skipped and
    /// counted in `skipped`; anything malformed throws.
    public static func decode(_ bytes: [UInt8]) throws(Failure) -> (messages: [GossipMessage], skipped: Int) {
        var reader = BinaryReader(bytes, what: "gossip packet")
        do {
            let count = Int(try reader.readUInt8())
            var messages: [GossipMessage] = []
            var skipped = 0
            for _ in 0..<count {
                let type = try reader.readUInt8()
                let body = try reader.read16Prefixed()
                guard let kind = GossipMessage.Kind(rawValue: type) else {
                    skipped += 1
                    continue
                }
                var bodyReader = BinaryReader(body, what: "gossip message")
                messages.append(try decodeBody(kind, &bodyReader))
                guard bodyReader.isAtEnd else { throw Failure.malformed("trailing bytes in a \(kind) message") }
            }
            guard reader.isAtEnd else { throw Failure.malformed("trailing bytes after the messages") }
            return (messages, skipped)
        } catch let failure as Failure {
            throw failure
        } catch {
            throw .malformed("\(error)")
        }
    }

    private static func decodeBody(_ kind: GossipMessage.Kind, _ reader: inout BinaryReader) throws -> GossipMessage {
        switch kind {
        case .ping:
            return .ping(seq: try reader.readUInt32(), target: try name(&reader), source: try name(&reader))
        case .indirectPing:
            return .indirectPing(seq: try reader.readUInt32(), target: try name(&reader), targetAddress: try address(&reader),
                                 requester: try name(&reader), requesterAddress: try address(&reader))
        case .ack:
            return .ack(seq: try reader.readUInt32(), source: try name(&reader))
        case .nack:
            return .nack(seq: try reader.readUInt32(), source: try name(&reader))
        case .alive:
            return .alive(incarnation: try incarnation(&reader), identity: try identity(&reader))
        case .suspect:
            return .suspect(incarnation: try incarnation(&reader), name: try name(&reader), accuser: try name(&reader))
        case .dead:
            return .dead(incarnation: try incarnation(&reader), name: try name(&reader), accuser: try name(&reader))
        }
    }

    static func identity(_ reader: inout BinaryReader) throws -> MemberIdentity {
        MemberIdentity(name: try name(&reader), region: try RegionID(try reader.read8String()), bootID: try reader.readUInt64(),
                       gossipAddress: try address(&reader), httpAddress: try reader.read8String())
    }

    private static func incarnation(_ reader: inout BinaryReader) throws -> UInt64 {
        let incarnation = try reader.readUInt64()
        guard incarnation <= incarnationMax else { throw Failure.malformed("incarnation above 2^62") }
        return incarnation
    }

    private static func name(_ reader: inout BinaryReader) throws -> NodeName { try NodeName(try reader.read8String()) }

    private static func address(_ reader: inout BinaryReader) throws -> String {
        let text = try reader.read8String()
        guard !text.isEmpty else { throw Failure.malformed("empty address") }
        return text
    }

    // MARK: Push-pull state

    /// `count(2) · count × [status(1) · incarnation(8) · identity]`.
    public static func encodeState(_ members: [MemberState]) -> [UInt8] {
        var writer = BinaryWriter(capacity: 64 + members.count * 80)
        writer.write(UInt16(members.count))
        for member in members {
            writer.write(member.status.rawValue)
            writer.write(member.incarnation)
            encode(member.identity, into: &writer)
        }
        return writer.bytes
    }

    public static func decodeState(_ bytes: [UInt8], membersMax: Int) throws(Failure) -> [MemberState] {
        var reader = BinaryReader(bytes, what: "push-pull state")
        do {
            let count = Int(try reader.readUInt16())
            guard count <= membersMax else { throw Failure.malformed("state lists \(count) members, more than \(membersMax)") }
            var members: [MemberState] = []
            for _ in 0..<count {
                guard let status = MemberStatus(rawValue: try reader.readUInt8()) else { throw Failure.malformed("unknown status") }
                let incarnation = try incarnation(&reader)
                members.append(MemberState(identity: try identity(&reader), incarnation: incarnation, status: status))
            }
            guard reader.isAtEnd else { throw Failure.malformed("trailing bytes after the state") }
            return members
        } catch let failure as Failure {
            throw failure
        } catch {
            throw .malformed("\(error)")
        }
    }

    // MARK: Sealing

    static func associatedData(_ pool: Pool) -> [UInt8] { [version, pool.rawValue] }

    /// Encrypts a plaintext for `pool` with the primary key of `keys`.
    public static func seal(_ plaintext: [UInt8], pool: Pool, keys: KeySet) -> [UInt8] {
        var packet = [version, pool.rawValue]
        var nonce = SecureRandom.bytes(AESGCM.nonceByteCount)
        packet.append(contentsOf: nonce)
        var ciphertext = [UInt8](repeating: 0, count: plaintext.count)
        var tag = [UInt8](repeating: 0, count: AESGCM.tagByteCount)
        let ad = associatedData(pool)
        keys.primary.secret.withUnsafeBytes { key in
            nonce.withUnsafeMutableBytes { nonceBytes in
                plaintext.withUnsafeBytes { plain in
                    ad.withUnsafeBytes { adBytes in
                        ciphertext.withUnsafeMutableBytes { out in
                            tag.withUnsafeMutableBytes { tagOut in
                                do {
                                    try AESGCM.seal(key: key, nonce: UnsafeRawBufferPointer(nonceBytes), plaintext: plain,
                                                    associatedData: adBytes, ciphertext: out, tag: tagOut)
                                } catch {
                                    preconditionFailure("AES-GCM seal with a checked key failed: \(error)")
                                }
                            }
                        }
                    }
                }
            }
        }
        packet.append(contentsOf: ciphertext)
        packet.append(contentsOf: tag)
        return packet
    }

    /// The pool byte of a packet, read before choosing keys.
    public static func pool(of packet: [UInt8]) throws(Failure) -> Pool {
        guard packet.count >= packetOverhead + 1 else { throw .tooShort }
        guard packet[0] == version else { throw .unsupportedVersion(packet[0]) }
        guard let pool = Pool(rawValue: packet[1]) else { throw .unknownPool(packet[1]) }
        return pool
    }

    /// Decrypts a packet with whichever installed key opens it.
    public static func open(_ packet: [UInt8], keys: KeySet) throws(Failure) -> (pool: Pool, plaintext: [UInt8]) {
        let pool = try pool(of: packet)
        let nonce = Array(packet[2..<(2 + AESGCM.nonceByteCount)])
        let ciphertext = Array(packet[(2 + AESGCM.nonceByteCount)..<(packet.count - AESGCM.tagByteCount)])
        let tag = Array(packet.suffix(AESGCM.tagByteCount))
        let ad = associatedData(pool)
        for key in keys.keys {
            var plaintext = [UInt8](repeating: 0, count: ciphertext.count)
            let opened: Bool = key.secret.withUnsafeBytes { keyBytes in
                nonce.withUnsafeBytes { nonceBytes in
                    ciphertext.withUnsafeBytes { cipher in
                        tag.withUnsafeBytes { tagBytes in
                            ad.withUnsafeBytes { adBytes in
                                plaintext.withUnsafeMutableBytes { out in
                                    (try? AESGCM.open(key: keyBytes, nonce: nonceBytes, ciphertext: cipher, tag: tagBytes,
                                                      associatedData: adBytes, plaintext: out)) != nil
                                }
                            }
                        }
                    }
                }
            }
            if opened { return (pool, plaintext) }
        }
        throw .undecryptable
    }
}
