import CLinux
import DomicileModel
#if canImport(Glibc)
import Glibc
#endif

/// A UDP socket for gossip: bound once, sends to any address, receives with
/// a timeout on a thread of its own. Safe to send from several threads
/// (sendto on one socket is atomic per datagram). With a `LinkShaper`, a
/// datagram to a shaped peer is sent after the link's one-way time, or lost
/// at the link's rate.
public final class DatagramSocket: @unchecked Sendable {
    public let descriptor: Int32
    public let localAddress: SocketAddress
    private let links: LinkShaper?
    /// Receives larger than this are truncated, then dropped as malformed.
    public static let datagramBytesMax = 65_507

    public init(bind address: SocketAddress, receiveTimeoutMilliseconds: Int, links: LinkShaper? = nil) throws(SystemError) {
        self.links = links
        let descriptor = try syscallValue("socket") {
            socket(address.family, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        }
        do throws(SystemError) {
            try Socket.setOption(descriptor, SOL_SOCKET, SO_REUSEADDR, 1)
            let bound = address.withSockAddr { pointer, length in bind(descriptor, pointer, length) }
            if bound == -1 { throw SystemError(function: "bind", errno: errno) }
            var timeout = timeval(tv_sec: receiveTimeoutMilliseconds / 1_000, tv_usec: (receiveTimeoutMilliseconds % 1_000) * 1_000)
            _ = try syscallValue("setsockopt") {
                setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            }
            localAddress = try SocketAddress.local(of: descriptor)
        } catch {
            closeDescriptor(descriptor)
            throw error
        }
        self.descriptor = descriptor
    }

    deinit { closeDescriptor(descriptor) }

    /// Best effort, as UDP is: a failure is counted by the caller, not thrown.
    /// A datagram delayed or lost by the shaper counts as sent.
    @discardableResult
    public func send(_ bytes: [UInt8], to address: SocketAddress) -> Bool {
        guard let links, links.shape(to: address) != nil else { return sendNow(bytes, to: address) }
        if !links.losesDatagram(to: address) {
            links.afterOneWay(to: address) { [self] in _ = sendNow(bytes, to: address) }
        }
        return true
    }

    private func sendNow(_ bytes: [UInt8], to address: SocketAddress) -> Bool {
        let sent = bytes.withUnsafeBytes { raw in
            address.withSockAddr { pointer, length in
                sendto(descriptor, raw.baseAddress, raw.count, Int32(MSG_NOSIGNAL), pointer, length)
            }
        }
        return sent == bytes.count
    }

    /// The next datagram and its sender, or nil when the timeout passed.
    public func receive() -> (bytes: [UInt8], from: SocketAddress)? {
        var buffer = [UInt8](repeating: 0, count: Self.datagramBytesMax)
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let count = buffer.withUnsafeMutableBytes { raw in
            withUnsafeMutablePointer(to: &storage) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(descriptor, raw.baseAddress, raw.count, 0, $0, &length) }
            }
        }
        guard count >= 0 else { return nil }
        return (Array(buffer.prefix(count)), SocketAddress.from(storage))
    }
}
