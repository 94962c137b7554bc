/// Bytes queued for a non-blocking socket and how many of them it took.
struct PendingOutput {
    private var bytes: [UInt8] = []
    private var offset = 0

    var isEmpty: Bool { offset == bytes.count }
    /// Bytes not yet taken by the socket.
    var count: Int { bytes.count - offset }

    mutating func append(_ more: [UInt8]) {
        bytes.append(contentsOf: more)
    }

    /// Writes what the socket takes now; true once everything is written.
    /// A failure (EPIPE, ECONNRESET) means the peer is gone.
    mutating func flush(to descriptor: Int32) throws(SystemError) -> Bool {
        try flush(to: Wire(descriptor: descriptor))
    }

    /// Writes what the wire (the socket, or TLS over it) takes now.
    mutating func flush(to wire: Wire) throws(SystemError) -> Bool {
        while offset < bytes.count {
            let result = bytes.withUnsafeBytes { raw in
                Result { () throws(SystemError) in try wire.send(UnsafeRawBufferPointer(rebasing: raw[offset...])) }
            }
            switch result {
            case .success(.done(let written)): offset += written
            case .success(.wouldBlock): return false
            case .failure(let error): throw error
            }
        }
        bytes.removeAll()
        offset = 0
        return true
    }
}
