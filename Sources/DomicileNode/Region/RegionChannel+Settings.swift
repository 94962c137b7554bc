extension RegionChannel {
    /// The channel's bounds and timings (validated by `init`).
    public struct Settings: Sendable {
        /// The largest frame on the wire, sealed (a Raft append or a
        /// snapshot chunk must fit; 4 MiB leaves room for a 1 MiB chunk
        /// with headroom, and bounds what one peer makes us buffer).
        public var frameBytesMax = 4 * 1_024 * 1_024
        /// Frames queued for one peer while it is unreachable or slow. When
        /// either bound is hit the oldest fire-and-forget message is
        /// dropped (Raft resends); a request that cannot be queued fails
        /// with `queueFull` at once.
        public var queueCountMax = 1_024
        public var queueBytesMax = 16 * 1_024 * 1_024
        /// Bytes handed to one connection's socket and not yet taken: past
        /// it, frames wait in the queue (where they can be dropped) rather
        /// than in the socket's buffer (where they cannot).
        public var socketBytesHigh = 1 * 1_024 * 1_024
        /// Inbound connections at once (a region has a handful of nodes;
        /// more are refused at accept).
        public var acceptedMax = 64
        /// A connection that has not finished its handshake by then is closed.
        public var handshakeTimeoutMilliseconds: Int64 = 5_000
        /// Reconnection back-off: base · 2^(attempt−1), capped, then a
        /// uniform draw in [½, 1] of it so that a region's nodes do not
        /// redial in step.
        public var reconnectBaseMilliseconds: Int64 = 100
        public var reconnectMaxMilliseconds: Int64 = 5_000
        /// Peers' requests being handled at once (each a task); more are
        /// dropped unanswered and counted, and their senders time out.
        public var servedRequestsMax = 1_024
        /// Initiator nonces remembered to refuse a replayed hello.
        public var recentNoncesMax = 4_096

        public init() {}

        public static let lan = Settings()

        /// Quick reconnection, for tests and `bench channel` on one machine.
        public static var loopback: Settings {
            var settings = Settings()
            settings.reconnectBaseMilliseconds = 20
            settings.reconnectMaxMilliseconds = 200
            settings.handshakeTimeoutMilliseconds = 2_000
            return settings
        }

        func validate() {
            precondition(frameBytesMax >= 1_024 && frameBytesMax <= 64 * 1_024 * 1_024, "frameBytesMax must be 1 KiB…64 MiB")
            precondition(queueCountMax >= 1 && queueBytesMax >= frameBytesMax, "the queue must hold at least one frame")
            precondition(socketBytesHigh >= 1, "socketBytesHigh must be positive")
            precondition(reconnectBaseMilliseconds >= 1 && reconnectMaxMilliseconds >= reconnectBaseMilliseconds,
                         "reconnect back-off: 1 ≤ base ≤ max")
            precondition(handshakeTimeoutMilliseconds >= 1 && recentNoncesMax >= 1 && acceptedMax >= 1
                         && servedRequestsMax >= 1, "bounds must be positive")
        }
    }
}
