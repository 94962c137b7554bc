extension HTTPServer {
    /// Every limit and timeout of the server. Defaults suit an API node
    /// facing applications on a LAN; `validated()` rejects nonsense at start.
    public struct Settings: Sendable, Equatable {
        /// Request size limits (414, 431, 413).
        public var limits = HTTPParseLimits()
        /// Request bodies held at once, over all connections: a body's
        /// `Content-Length` is reserved once its head is admitted (a chunked
        /// body's running total as it arrives). Past it: 503 `overloaded`
        /// with `Retry-After`, and the connection is closed unread.
        public var bodyBytesInFlightMax = 64 * 1_024 * 1_024
        /// A refused request (401, 403, 404, 405…) whose body is at most this
        /// large is read and dropped, so the connection stays usable; a larger
        /// one is answered at once and the connection closed without reading it.
        public var refusedBodyBytesMax = 16 * 1_024
        /// Open connections at most. Past it, new connections get a 503 and
        /// are closed at once; established ones are not disturbed.
        public var connectionsMax = 4_096
        /// From a connection's first byte of a request to the end of its
        /// header block. Slow-header clients (slowloris) are cut off here.
        public var headerReadTimeoutMilliseconds: Int64 = 10_000
        /// From the end of the header block to the end of the body.
        public var bodyReadTimeoutMilliseconds: Int64 = 30_000
        /// An idle keep-alive connection is closed after this long.
        public var idleTimeoutMilliseconds: Int64 = 60_000
        /// A response the client does not read is dropped after this long.
        public var writeTimeoutMilliseconds: Int64 = 30_000
        /// Event loops (threads); one per core unless told otherwise.
        public var eventLoopCount = System.coreCount
        /// Pending connections the kernel queues for accept(2).
        public var listenBacklog: Int32 = 1_024
        /// Bytes read from a socket per read(2).
        public var readChunkBytes = 64 * 1_024
        /// Pipelined bytes buffered while a request is being handled; beyond
        /// that the connection stops reading until the response is written.
        public var pipelinedBytesMax = 1_024 * 1_024
        /// Response bytes queued but not yet accepted by the socket before
        /// the connection stops taking new pipelined requests.
        public var outputBytesMax = 4 * 1_024 * 1_024

        public init() {}

        /// Short timeouts for tests on loopback.
        public static var loopback: Settings {
            var settings = Settings()
            settings.headerReadTimeoutMilliseconds = 2_000
            settings.bodyReadTimeoutMilliseconds = 2_000
            settings.idleTimeoutMilliseconds = 5_000
            settings.writeTimeoutMilliseconds = 5_000
            return settings
        }

        public struct Invalid: Error, CustomStringConvertible {
            public let description: String
        }

        public func validated() throws(Invalid) -> Settings {
            func require(_ condition: Bool, _ message: String) throws(Invalid) {
                if !condition { throw Invalid(description: "HTTP settings: \(message)") }
            }
            try require(connectionsMax >= 1, "connections max must be at least 1")
            try require(eventLoopCount >= 1 && eventLoopCount <= 256, "event loop count must be 1...256")
            try require(limits.requestLineBytesMax >= 64, "request line limit must be at least 64 bytes")
            try require(limits.headerBytesMax >= 256, "header block limit must be at least 256 bytes")
            try require(limits.headerCountMax >= 4, "header count limit must be at least 4")
            try require(limits.bodyBytesMax >= 0, "body limit must not be negative")
            try require(bodyBytesInFlightMax >= limits.bodyBytesMax, "the in-flight body budget must hold the largest body")
            try require(refusedBodyBytesMax >= 0, "the refused-body limit must not be negative")
            try require(headerReadTimeoutMilliseconds >= 100 && bodyReadTimeoutMilliseconds >= 100
                        && idleTimeoutMilliseconds >= 100 && writeTimeoutMilliseconds >= 100,
                        "timeouts must be at least 100 ms")
            try require(readChunkBytes >= 1_024, "read chunk must be at least 1 KiB")
            return self
        }
    }
}

public enum System {
    /// Cores this process may run on.
    public static var coreCount: Int {
        max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    }
}

#if canImport(Glibc)
import Glibc
#endif
