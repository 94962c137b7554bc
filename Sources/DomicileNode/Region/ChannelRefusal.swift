/// Why a region channel closed a peer's connection (counted by reason in
/// `RegionChannel.Statistics`; never logged with the peer's bytes).
public enum ChannelRefusal: String, Error, Sendable, CaseIterable {
    /// A handshake message that does not parse, of the wrong kind or version.
    case malformedHandshake = "malformed_handshake"
    /// The hello names another region.
    case wrongRegion = "wrong_region"
    /// The hello is addressed to another node, or the welcome comes from one.
    case wrongNode = "wrong_node"
    /// The name is not in the roster.
    case unknownNode = "unknown_node"
    /// The signature does not verify under any key the roster trusts for the name.
    case badSignature = "bad_signature"
    /// A hello nonce seen before, or a welcome echoing ours.
    case replayedNonce = "replayed_nonce"
    /// The region key version is not installed here.
    case unknownKey = "unknown_key"
    /// The handshake did not finish in time.
    case handshakeTimeout = "handshake_timeout"
    /// A sealed frame that does not open as the peer's next frame.
    case undecryptable
    /// An opened frame whose content does not parse.
    case malformedFrame = "malformed_frame"
    /// A frame length over the bound.
    case tooLarge = "too_large"
    /// The peer closed in the middle of a frame.
    case truncated
}
