import CLinux
import DomicileModel
#if canImport(Glibc)
import Glibc
#endif

/// An IPv4 or IPv6 address and port, parsed from `host:port` or `[v6]:port`.
public struct SocketAddress: Hashable, Sendable, CustomStringConvertible {
    public let host: String
    public let port: UInt16
    let family: Int32

    public enum ParseError: Error, Equatable, CustomStringConvertible {
        case invalid(String)

        public var description: String {
            switch self {
            case .invalid(let reason): return "invalid address: \(reason)"
            }
        }
    }

    /// Parses `127.0.0.1:7100`, `[::1]:7100` or `localhost:7100` (names are
    /// resolved once, here; numeric addresses are preferred in configs).
    public init(parsing text: String) throws(ParseError) {
        let host: String
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
                throw .invalid("expected [ipv6]:port")
            }
            host = String(text[text.index(after: text.startIndex)..<close])
            portText = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":") else { throw .invalid("expected host:port") }
            host = String(text[..<colon])
            portText = text[text.index(after: colon)...]
        }
        guard let port = UInt16(portText) else { throw .invalid("port must be 0-65535") }
        try self.init(host: host, port: port)
    }

    public init(host: String, port: UInt16) throws(ParseError) {
        var v4 = in_addr()
        var v6 = in6_addr()
        if inet_pton(AF_INET, host, &v4) == 1 {
            self.host = host
            family = AF_INET
        } else if inet_pton(AF_INET6, host, &v6) == 1 {
            self.host = host
            family = AF_INET6
        } else {
            guard let resolved = Self.resolve(host) else { throw .invalid("cannot resolve host") }
            self.host = resolved.host
            family = resolved.family
        }
        self.port = port
    }

    private init(numericHost: String, port: UInt16, family: Int32) {
        self.host = numericHost
        self.port = port
        self.family = family
    }

    private static func resolve(_ name: String) -> (host: String, family: Int32)? {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(name, nil, &hints, &result) == 0, let first = result else { return nil }
        defer { freeaddrinfo(result) }
        var buffer = [CChar](repeating: 0, count: Int(NI_MAXHOST))
        guard getnameinfo(first.pointee.ai_addr, first.pointee.ai_addrlen, &buffer, socklen_t(buffer.count),
                          nil, 0, NI_NUMERICHOST) == 0 else { return nil }
        return (String(decoding: buffer.prefix { $0 != 0 }.map(UInt8.init(bitPattern:)), as: UTF8.self), first.pointee.ai_family)
    }

    public var description: String { family == AF_INET6 ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// Calls `body` with this address as a `sockaddr`.
    func withSockAddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) throws -> R) rethrows -> R {
        if family == AF_INET6 {
            var address = sockaddr_in6()
            address.sin6_family = sa_family_t(AF_INET6)
            address.sin6_port = port.bigEndian
            inet_pton(AF_INET6, host, &address.sin6_addr)
            return try withUnsafePointer(to: &address) {
                try $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { try body($0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
            }
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        inet_pton(AF_INET, host, &address.sin_addr)
        return try withUnsafePointer(to: &address) {
            try $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { try body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
    }

    /// The address a socket is bound to (to learn an ephemeral port).
    public static func localAddress(of descriptor: Int32) throws(SystemError) -> SocketAddress {
        try local(of: descriptor)
    }

    static func local(of descriptor: Int32) throws(SystemError) -> SocketAddress {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = try withUnsafeMutablePointer(to: &storage) { pointer throws(SystemError) in
            try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address throws(SystemError) in
                try syscallValue("getsockname") { getsockname(descriptor, address, &length) }
            }
        }
        return from(storage)
    }

    static func from(_ storage: sockaddr_storage) -> SocketAddress {
        var storage = storage
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        if Int32(storage.ss_family) == AF_INET6 {
            return withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { address in
                    var raw = address.pointee.sin6_addr
                    inet_ntop(AF_INET6, &raw, &buffer, socklen_t(buffer.count))
                    return SocketAddress(numericHost: String(cString: buffer), port: UInt16(bigEndian: address.pointee.sin6_port),
                                         family: AF_INET6)
                }
            }
        }
        return withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { address in
                var raw = address.pointee.sin_addr
                inet_ntop(AF_INET, &raw, &buffer, socklen_t(buffer.count))
                return SocketAddress(numericHost: String(cString: buffer), port: UInt16(bigEndian: address.pointee.sin_port),
                                     family: AF_INET)
            }
        }
    }
}

extension SocketAddress: TextRepresentable {
    public init(text: String) throws { try self.init(parsing: text) }
    public var text: String { description }
}
