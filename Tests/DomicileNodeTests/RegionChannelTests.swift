@testable import DomicileNode
import DomicileCrypto
import DomicileModel
import DomicileNet
import DomicileTestSupport
import Foundation
import XCTest

/// The region channel over real loopback sockets: named nodes, handshake
/// against a roster, sealed frames, bounded queues, refusals by reason.
final class RegionChannelTests: XCTestCase {
    /// One region's shared material and the nodes' addresses as gossip would give them.
    final class Region: @unchecked Sendable {
        let id = try! RegionID("eu")
        let keys = KeySet([try! AESGCMKey(version: 1, secret: SecretBytes(randomCount: 32))])
        let addresses = Locked([NodeName: SocketAddress]())
        let rosterValue = Locked(NodeRoster())
        var signing: [NodeName: Ed25519PrivateKey] = [:]

        func key(_ name: NodeName) -> Ed25519PrivateKey {
            if let key = signing[name] { return key }
            let key = try! Ed25519PrivateKey(seed: SecureRandom.bytes(32))
            signing[name] = key
            rosterValue.withLock { $0.keys[name] = [key.publicKey] }
            return key
        }
    }

    /// What one channel received.
    final class Inbox: @unchecked Sendable {
        let messages = Locked([(NodeName, [UInt8])]())
        func count(from peer: NodeName) -> Int { messages.value.filter { $0.0 == peer }.count }
    }

    func name(_ text: String) -> NodeName { try! NodeName(text) }

    func channel(_ node: String, in region: Region, signing: Ed25519PrivateKey? = nil, keys: KeySet? = nil,
                 settings: RegionChannel.Settings = .loopback, inbox: Inbox = Inbox(),
                 request: @escaping @Sendable (NodeName, [UInt8]) async -> [UInt8] = { _, payload in payload.reversed() })
        throws -> RegionChannel {
        let me = name(node)
        let channel = try RegionChannel(
            region: region.id, name: me, signing: signing ?? region.key(me), regionKeys: keys ?? region.keys,
            bind: try SocketAddress(host: "127.0.0.1", port: 0), roster: { region.rosterValue.value },
            resolve: { region.addresses.value[$0] }, random: SeededRandomSource(seed: 7), settings: settings,
            handlers: .init(message: { peer, payload in inbox.messages.withLock { $0.append((peer, payload)) } }, request: request))
        region.addresses.withLock { $0[me] = channel.localAddress }
        return channel
    }

    func waitUntil(_ what: String, seconds: Double = 10, _ condition: () -> Bool) throws {
        let end = Date().addingTimeInterval(seconds)
        while !condition() {
            guard Date() < end else { return XCTFail("timed out waiting until \(what)") }
            usleep(5_000)
        }
    }

    func deadline(seconds: Int) -> ContinuousClock.Instant { .now + .seconds(seconds) }

    // MARK: Exchange

    func test_threeNodes_exchangeMessagesBothWays() throws {
        let region = Region()
        let names = ["a", "b", "c"]
        let inboxes = names.map { _ in Inbox() }
        let channels = try zip(names, inboxes).map { try channel($0, in: region, inbox: $1) }
        defer { channels.forEach { $0.stop() } }
        for (index, sender) in channels.enumerated() {
            for peer in names where peer != names[index] {
                for sequence in 0..<50 { sender.send(Array("\(names[index])→\(peer) \(sequence)".utf8), to: name(peer)) }
            }
        }
        for (index, inbox) in inboxes.enumerated() {
            for peer in names where peer != names[index] {
                try waitUntil("\(names[index]) has 50 messages from \(peer)") { inbox.count(from: name(peer)) == 50 }
                let texts = inbox.messages.value.filter { $0.0 == name(peer) }.map { String(decoding: $0.1, as: UTF8.self) }
                XCTAssertEqual(texts, (0..<50).map { "\(peer)→\(names[index]) \($0)" }, "in order, intact, from the proven sender")
            }
        }
        XCTAssertEqual(channels.map { $0.statistics.refusals }, [[:], [:], [:]])
    }

    /// More than a socket buffer's worth in one burst: every batch the
    /// socket takes whole is followed by the next (an early pump stopped
    /// after one, and 64 KiB messages stayed queued for ever). The sender's
    /// queue holds the whole burst, so nothing is dropped however slowly the
    /// machine drains it (with the default 16 MiB, a loaded machine dropped
    /// what had not left before the burst ended).
    func test_burstOfLargeMessages_allArrive() throws {
        let region = Region()
        let inbox = Inbox()
        var roomy = RegionChannel.Settings.loopback
        roomy.queueBytesMax = 32 * 1_024 * 1_024
        let a = try channel("a", in: region, settings: roomy)
        let b = try channel("b", in: region, inbox: inbox)
        defer { [a, b].forEach { $0.stop() } }
        for index in 0..<300 { a.send([UInt8](repeating: UInt8(index % 251), count: 64 * 1_024), to: name("b")) }
        try waitUntil("b has all 300 messages") { inbox.count(from: name("a")) == 300 }
        XCTAssertEqual(inbox.messages.value.map { $0.1.first }, (0..<300).map { UInt8($0 % 251) })
        XCTAssertEqual(a.statistics.messagesDropped, 0)
    }

    func test_request_getsItsReply_orTimesOut_orIsCancelled() async throws {
        let region = Region()
        let a = try channel("a", in: region)
        let b = try channel("b", in: region)
        let slow = try channel("slow", in: region, request: { _, _ in
            try? await Task.sleep(for: .seconds(30))
            return []
        })
        defer { [a, b, slow].forEach { $0.stop() } }
        let reply = try await a.request([1, 2, 3], to: name("b"), deadline: deadline(seconds: 10))
        XCTAssertEqual(reply, [3, 2, 1])
        let replyBack = try await b.request(Array(repeating: 9, count: 100_000) + [1], to: name("a"), deadline: deadline(seconds: 10))
        XCTAssertEqual(replyBack, [1] + Array(repeating: 9, count: 100_000))
        do {
            _ = try await a.request([1], to: name("slow"), deadline: .now + .milliseconds(300))
            XCTFail("a reply that never comes ends at the deadline")
        } catch {
            XCTAssertEqual(error, .timeout)
        }
        let slowName = name("slow")
        let cancelled = Task { [a] in try await a.request([2], to: slowName, deadline: .now + .seconds(30)) }
        try await Task.sleep(for: .milliseconds(100))
        cancelled.cancel()
        do {
            _ = try await cancelled.value
            XCTFail("a cancelled request throws")
        } catch {
            XCTAssertEqual(error as? RegionChannel.Failure, .cancelled)
        }
        do {
            _ = try await a.request(Array(repeating: 0, count: 5 * 1_024 * 1_024), to: name("b"), deadline: deadline(seconds: 1))
            XCTFail("over the frame bound")
        } catch {
            XCTAssertEqual(error, .tooLarge)
        }
    }

    /// Identity is the name and key: a node back on another port is reached
    /// once the resolver gives its new address.
    func test_peerRestartedOnANewPort_isReachedAgain() async throws {
        let region = Region()
        let a = try channel("a", in: region)
        defer { a.stop() }
        var b = try channel("b", in: region)
        let first = try await a.request([1], to: name("b"), deadline: deadline(seconds: 10))
        XCTAssertEqual(first, [1])
        let oldPort = b.localAddress.port
        b.stop()
        b = try channel("b", in: region)
        defer { b.stop() }
        XCTAssertNotEqual(b.localAddress.port, oldPort)
        var reached = false
        for _ in 0..<100 where !reached {
            reached = (try? await a.request([2, 3], to: name("b"), deadline: .now + .milliseconds(300))) == [3, 2]
        }
        XCTAssertTrue(reached, "the new address is dialed after back-off")
    }

    // MARK: Identity

    func test_impostorWithTheRegionKey_butAnUnknownSigningKey_isRefused() throws {
        let region = Region()
        let inbox = Inbox()
        let a = try channel("a", in: region, inbox: inbox)
        _ = region.key(name("b"))
        // Claims b's name with a key of its own; also a name the roster does not hold.
        let impostor = try channel("b", in: region, signing: try Ed25519PrivateKey(seed: SecureRandom.bytes(32)))
        let elsewhere = Region()
        let stranger = try channel("z", in: elsewhere, keys: region.keys)
        defer { [a, impostor, stranger].forEach { $0.stop() } }
        region.addresses.withLock { $0[name("a")] = a.localAddress }
        elsewhere.addresses.withLock { $0[name("a")] = a.localAddress }
        impostor.send([1], to: name("a"))
        try waitUntil("a refused the impostor's proof") { (a.statistics.refusals[.badSignature] ?? 0) >= 1 }
        stranger.send([2], to: name("a"))
        try waitUntil("a refused the stranger") { (a.statistics.refusals[.unknownNode] ?? 0) >= 1 }
        XCTAssertTrue(inbox.messages.value.isEmpty)
        XCTAssertEqual(a.statistics.connectionsOpened, 0)
    }

    func test_wrongRegion_andUnknownName_areRefusedByReason() throws {
        let region = Region()
        let a = try channel("a", in: region)
        defer { a.stop() }
        let foreign = try RegionChannel(
            region: try RegionID("us"), name: name("f"), signing: region.key(name("f")), regionKeys: region.keys,
            bind: try SocketAddress(host: "127.0.0.1", port: 0), roster: { region.rosterValue.value },
            resolve: { region.addresses.value[$0] }, random: SeededRandomSource(seed: 1), settings: .loopback,
            handlers: .init(message: { _, _ in }, request: { _, _ in [] }))
        defer { foreign.stop() }
        foreign.send([1], to: name("a"))
        try waitUntil("a refused another region") { (a.statistics.refusals[.wrongRegion] ?? 0) >= 1 }
        let elsewhere = Region()
        let unknown = try channel("u", in: elsewhere, keys: region.keys)
        defer { unknown.stop() }
        elsewhere.addresses.withLock { $0[name("a")] = a.localAddress }
        unknown.send([1], to: name("a"))
        try waitUntil("a refused a name not in its roster") { (a.statistics.refusals[.unknownNode] ?? 0) >= 1 }
    }

    // MARK: Bad bytes

    /// Performs a genuine handshake as `me` over a raw socket and returns
    /// the session, so the test can send frames byte by byte.
    func rawSession(to target: RegionChannel, as me: NodeName, in region: Region) throws -> (RawConnection, ChannelSession, [UInt8]) {
        let connection = try RawConnection(port: target.localAddress.port)
        let identity = ChannelHandshake.Identity(region: region.id, name: me, signing: region.key(me), regionKeys: region.keys)
        var (handshake, hello) = ChannelHandshake.initiate(identity, to: target.name, nonce: SecureRandom.bytes(32))
        XCTAssertTrue(connection.send(frame(hello)))
        let length = try connection.read(exactly: 4).reduce(0) { $0 << 8 | Int($1) }
        let welcome = try connection.read(exactly: length)
        guard case .open(let session, let proof?) = try handshake.receive(welcome, roster: region.rosterValue.value, fresh: { _ in true },
                                                                         nonce: { [] }) else {
            throw XCTSkip("handshake did not open")
        }
        XCTAssertTrue(connection.send(frame(proof)))
        return (connection, session, frame(hello) + frame(proof))
    }

    func frame(_ bytes: [UInt8]) -> [UInt8] {
        [UInt8(bytes.count >> 24 & 0xFF), UInt8(bytes.count >> 16 & 0xFF), UInt8(bytes.count >> 8 & 0xFF), UInt8(bytes.count & 0xFF)] + bytes
    }

    func test_replayedFrame_andReplayedHandshake_areRefused() throws {
        let region = Region()
        let inbox = Inbox()
        let a = try channel("a", in: region, inbox: inbox)
        defer { a.stop() }
        var (connection, session, handshakeBytes) = try rawSession(to: a, as: name("r"), in: region)
        let sealed = frame(session.seal(ChannelFrame.message([42]).encoded))
        XCTAssertTrue(connection.send(sealed))
        try waitUntil("the first copy is delivered") { inbox.count(from: name("r")) == 1 }
        XCTAssertTrue(connection.send(sealed))
        XCTAssertTrue(connection.isClosedByPeer(), "the same frame again is not the next one")
        XCTAssertEqual(a.statistics.refusals[.undecryptable], 1)
        XCTAssertEqual(inbox.count(from: name("r")), 1)
        // The whole connection's bytes replayed on a new connection.
        let replay = try RawConnection(port: a.localAddress.port)
        XCTAssertTrue(replay.send(handshakeBytes + sealed))
        XCTAssertTrue(replay.isClosedByPeer())
        XCTAssertEqual(a.statistics.refusals[.replayedNonce], 1)
        XCTAssertEqual(inbox.count(from: name("r")), 1)
    }

    func test_peersBadBytes_closeOnlyTheirConnection_countedByReason() async throws {
        let region = Region()
        let a = try channel("a", in: region)
        let b = try channel("b", in: region)
        defer { [a, b].forEach { $0.stop() } }
        let before = try await b.request([1, 2], to: name("a"), deadline: deadline(seconds: 10))
        XCTAssertEqual(before, [2, 1])
        let garbage = try RawConnection(port: a.localAddress.port)
        XCTAssertTrue(garbage.send(frame(Array("GET / HTTP/1.1\r\n\r\n".utf8))))
        XCTAssertTrue(garbage.isClosedByPeer())
        let oversize = try RawConnection(port: a.localAddress.port)
        XCTAssertTrue(oversize.send([0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3]))
        XCTAssertTrue(oversize.isClosedByPeer())
        let truncated = try RawConnection(port: a.localAddress.port)
        XCTAssertTrue(truncated.send([0, 0, 0, 100, 1, 2, 3]))
        shutdown(truncated.descriptor, Int32(SHUT_WR))
        let (sealedConnection, _, _) = try rawSession(to: a, as: name("s"), in: region)
        XCTAssertTrue(sealedConnection.send(frame(Array(repeating: 0xAB, count: 40))))
        XCTAssertTrue(sealedConnection.isClosedByPeer())
        try waitUntil("every bad connection is counted") {
            let refusals = a.statistics.refusals
            return refusals[.malformedHandshake] == 1 && refusals[.tooLarge] == 1 && refusals[.undecryptable] == 1
                && refusals[.truncated] == 1
        }
        let after = try await b.request([3, 4], to: name("a"), deadline: deadline(seconds: 10))
        XCTAssertEqual(after, [4, 3], "the good connection is untouched")
    }

    // MARK: Bounds

    func test_fullQueue_dropsOldestMessages_andFailsRequestsAtOnce() async throws {
        let region = Region()
        var settings = RegionChannel.Settings.loopback
        settings.queueCountMax = 4
        let a = try channel("a", in: region, settings: settings)
        defer { a.stop() }
        _ = region.key(name("gone"))  // in the roster, never reachable
        for index in 0..<10 { a.send([UInt8(index)], to: name("gone")) }
        try waitUntil("messages beyond the bound are dropped") { a.statistics.messagesDropped == 6 }
        // Requests push the messages out, then the queue is full of requests.
        let gone = name("gone")
        let waiting = (0..<4).map { _ in Task { [a] in try await a.request([1], to: gone, deadline: .now + .seconds(20)) } }
        try waitUntil("the four messages make room for the requests") { a.statistics.messagesDropped == 10 }
        do {
            _ = try await a.request([1], to: name("gone"), deadline: .now + .seconds(20))
            XCTFail("a request that cannot be queued fails at once")
        } catch {
            XCTAssertEqual(error, .queueFull)
        }
        waiting.forEach { $0.cancel() }
        for task in waiting {
            do {
                _ = try await task.value
            } catch {
                XCTAssertEqual(error as? RegionChannel.Failure, .cancelled)
            }
        }
    }

    func test_requestsBeyondWhatIsBeingServed_areDroppedAndCounted() async throws {
        let region = Region()
        var settings = RegionChannel.Settings.loopback
        settings.servedRequestsMax = 2
        let a = try channel("a", in: region)
        let b = try channel("b", in: region, settings: settings, request: { _, _ in
            try? await Task.sleep(for: .seconds(2))
            return [1]
        })
        defer { [a, b].forEach { $0.stop() } }
        let peer = name("b")
        let outcomes = await withTaskGroup(of: RegionChannel.Failure?.self) { group in
            for _ in 0..<3 {
                group.addTask { [a] in
                    do {
                        _ = try await a.request([0], to: peer, deadline: .now + .seconds(1))
                        return nil
                    } catch {
                        return error as? RegionChannel.Failure
                    }
                }
            }
            return await group.reduce(into: [RegionChannel.Failure?]()) { $0.append($1) }
        }
        XCTAssertEqual(outcomes, [RegionChannel.Failure.timeout, .timeout, .timeout], "slower than the deadline, or never answered")
        XCTAssertEqual(b.statistics.requestsDropped, 1, "the third found two being served")
    }

    func test_manyRequestsInFlight_keepTheThreadCountBounded() async throws {
        let region = Region()
        let a = try channel("a", in: region)
        let b = try channel("b", in: region)
        let c = try channel("c", in: region)
        defer { [a, b, c].forEach { $0.stop() } }
        _ = try await a.request([0], to: name("b"), deadline: deadline(seconds: 10))
        _ = try await a.request([0], to: name("c"), deadline: deadline(seconds: 10))
        let baseline = ThreadSampler.currentCount
        let sampler = ThreadSampler()
        let replies = try await withThrowingTaskGroup(of: Bool.self) { group in
            for index in 0..<2_000 {
                let peer = index % 2 == 0 ? name("b") : name("c")
                let payload = withUnsafeBytes(of: UInt32(index)) { Array($0) }
                group.addTask { try await a.request(payload, to: peer, deadline: .now + .seconds(30)) == payload.reversed() }
            }
            return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        let highest = sampler.stop()
        XCTAssertEqual(replies, 2_000)
        let cores = ProcessInfo.processInfo.activeProcessorCount
        XCTAssertLessThanOrEqual(highest, baseline + cores + 2, "no thread per connection or request (baseline \(baseline))")
    }
}
