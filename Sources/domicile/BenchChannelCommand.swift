import DomicileCrypto
import DomicileModel
import DomicileNet
import DomicileNode
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `domicile bench channel`: the region channel between two nodes on
/// loopback against the same frames over a plain TCP socket pair.
struct BenchChannelCommand: Command {
    static let path = ["bench", "channel"]
    static let summary = "region channel: messages/s and MB/s for 256 B and 64 KiB payloads against plain TCP"
    static let help = """
        [--small-count N] [--large-count N] [--window N] [--concurrency N]

        Two RegionChannels in this process on 127.0.0.1 (each on its own event-loop thread), after their
        handshake:
          - one way: node a sends N fire-and-forget messages to b, at most --window (default 512)
            unreceived at once so that none is dropped; timed until b has received the last;
          - request/reply: --concurrency (default 64) tasks each sending requests to b and awaiting
            the (empty) reply;
        and the reference: the same length-prefixed payloads over one plain TCP connection (a blocking
        writer thread and a blocking reader thread, no sealing, no handshake, no queue). 256 B payloads
        (--small-count, default 200000) and 64 KiB payloads (--large-count, default 20000).
        Build with -c release.
        """

    static func run(_ arguments: inout Arguments) async throws {
        func count(_ name: String, _ fallback: Int) throws -> Int {
            guard let value = Int(try arguments.option(name) ?? String(fallback)), value > 0 else {
                throw CLIError.usage("--\(name): a positive count")
            }
            return value
        }
        let smallCount = try count("small-count", 200_000)
        let largeCount = try count("large-count", 20_000)
        let window = try count("window", 512)
        let concurrency = try count("concurrency", 64)
        try arguments.finish()

        let pair = try ChannelPair()
        defer { pair.stop() }
        Output.line("domicile bench channel (loopback, AES-256-GCM per frame, \(ProcessInfo.processInfo.activeProcessorCount) cores)")
        Output.line("")
        Output.line("payload   path                         messages      msg/s       MB/s   vs plain TCP")
        for (size, total) in [(256, smallCount), (64 * 1_024, largeCount)] {
            let payload = [UInt8](repeating: 0xA5, count: size)
            let plain = try PlainTCP.measure(payload: payload, count: total)
            let oneWay = try await pair.oneWay(payload: payload, count: total, window: window)
            let requests = try await pair.requests(payload: payload, count: max(1, total / 4), concurrency: concurrency)
            let label = size >= 1_024 ? "\(size / 1_024) KiB" : "\(size) B"
            for (path, result) in [("plain TCP (reference)", plain), ("channel, one way", oneWay),
                                   ("channel, request/reply", requests)] {
                let ratio = result.messagesPerSecond / plain.messagesPerSecond
                Output.line(label.padding(toLength: 10, withPad: " ", startingAt: 0)
                            + path.padding(toLength: 27, withPad: " ", startingAt: 0)
                            + String(result.messages).leftPadded(10)
                            + String(format: "%11.0f", result.messagesPerSecond)
                            + String(format: "%11.1f", result.megabytesPerSecond(payload: size))
                            + String(format: "%14.2f×", ratio))
            }
        }
        let statistics = pair.a.statistics
        Output.line("")
        Output.line("a: \(statistics.framesSent) frames sent, \(statistics.messagesDropped) dropped, refusals \(statistics.refusals.count)")
    }

    struct Result {
        let messages: Int
        let seconds: Double
        var messagesPerSecond: Double { Double(messages) / seconds }
        func megabytesPerSecond(payload: Int) -> Double { messagesPerSecond * Double(payload) / 1_000_000 }
    }

    /// Two nodes of one region, each a channel, with b counting what it receives.
    final class ChannelPair: @unchecked Sendable {
        let a: RegionChannel
        let b: RegionChannel
        let received = Locked(0)
        let bName = try! NodeName("bench-b")

        init() throws {
            let region = try RegionID("bench")
            let keys = KeySet([try AESGCMKey(version: 1, secret: SecretBytes(randomCount: 32))])
            let aName = try NodeName("bench-a")
            let signingA = try Ed25519PrivateKey(seed: SecureRandom.bytes(32))
            let signingB = try Ed25519PrivateKey(seed: SecureRandom.bytes(32))
            let roster = NodeRoster([aName: [signingA.publicKey], bName: [signingB.publicKey]])
            let addresses = Locked([NodeName: SocketAddress]())
            let local = try SocketAddress(host: "127.0.0.1", port: 0)
            var settings = RegionChannel.Settings.loopback
            settings.queueCountMax = 4_096
            settings.queueBytesMax = 256 * 1_024 * 1_024
            let received = received
            b = try RegionChannel(region: region, name: bName, signing: signingB, regionKeys: keys, bind: local, roster: { roster },
                                  resolve: { addresses.value[$0] }, random: SecureRandomSource(), settings: settings,
                                  handlers: .init(message: { _, _ in received.withLock { $0 += 1 } }, request: { _, _ in [] }))
            a = try RegionChannel(region: region, name: aName, signing: signingA, regionKeys: keys, bind: local, roster: { roster },
                                  resolve: { addresses.value[$0] }, random: SecureRandomSource(), settings: settings,
                                  handlers: .init(message: { _, _ in }, request: { _, _ in [] }))
            addresses.withLock { $0 = [aName: a.localAddress, bName: b.localAddress] }
        }

        func stop() {
            a.stop()
            b.stop()
        }

        func oneWay(payload: [UInt8], count: Int, window: Int) async throws -> Result {
            _ = try await a.request([], to: bName, deadline: .now + .seconds(10))  // connected and handshaken
            let start = received.value
            let began = Date()
            for sent in 0..<count {
                while sent - (received.value - start) >= window { usleep(20) }
                a.send(payload, to: bName)
            }
            while received.value - start < count { usleep(50) }
            return Result(messages: count, seconds: Date().timeIntervalSince(began))
        }

        func requests(payload: [UInt8], count: Int, concurrency: Int) async throws -> Result {
            let began = Date()
            try await withThrowingTaskGroup(of: Void.self) { group in
                for worker in 0..<concurrency {
                    group.addTask { [a, bName] in
                        for _ in stride(from: worker, to: count, by: concurrency) {
                            _ = try await a.request(payload, to: bName, deadline: .now + .seconds(30))
                        }
                    }
                }
                try await group.waitForAll()
            }
            return Result(messages: count, seconds: Date().timeIntervalSince(began))
        }
    }

    /// The reference: `u32 length · payload` frames over one blocking TCP
    /// connection on loopback, written by one thread and read by another.
    enum PlainTCP {
        static func measure(payload: [UInt8], count: Int) throws -> Result {
            let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(listener) }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let bound = withUnsafeMutablePointer(to: &address) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw -> Bool in
                    bind(listener, raw, length) == 0 && listen(listener, 1) == 0 && getsockname(listener, raw, &length) == 0
                }
            }
            guard bound else { throw SystemError(function: "bind", errno: errno) }
            let writer = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(writer) }
            let connected = withUnsafePointer(to: &address) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(writer, $0, length) == 0 }
            }
            guard connected else { throw SystemError(function: "connect", errno: errno) }
            let reader = accept(listener, nil, nil)
            defer { close(reader) }
            var one: Int32 = 1
            setsockopt(writer, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            let frame = withUnsafeBytes(of: UInt32(payload.count).bigEndian) { Array($0) } + payload
            let done = DispatchSemaphore(value: 0)
            let began = Date()
            let thread = Thread {
                var buffer = [UInt8](repeating: 0, count: 256 * 1_024)
                var remaining = frame.count * count
                while remaining > 0 {
                    let got = buffer.withUnsafeMutableBytes { read(reader, $0.baseAddress, min($0.count, remaining)) }
                    guard got > 0 else { break }
                    remaining -= got
                }
                done.signal()
            }
            thread.start()
            for _ in 0..<count {
                var offset = 0
                while offset < frame.count {
                    let wrote = frame.withUnsafeBytes { send(writer, $0.baseAddress! + offset, frame.count - offset, Int32(MSG_NOSIGNAL)) }
                    guard wrote > 0 else { throw SystemError(function: "send", errno: errno) }
                    offset += wrote
                }
            }
            done.wait()
            return Result(messages: count, seconds: Date().timeIntervalSince(began))
        }
    }
}
