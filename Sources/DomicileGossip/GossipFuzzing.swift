import DomicileModel

/// What the gossip packet decoder is fuzzed for (Tests/Fuzz): on any input
/// it never traps; whatever decodes re-encodes to the same messages; and
/// whatever decodes can be handed to a membership instance — as a packet or
/// as push-pull state — without breaking it. Violations stop the process.
public enum GossipFuzzing {
    public static func check(_ data: UnsafeRawBufferPointer) {
        let bytes = Array(data)
        if let decoded = try? GossipCodec.decode(bytes) {
            let again = try? GossipCodec.decode(GossipCodec.encode(decoded.messages))
            precondition(again?.messages == decoded.messages, "decode → encode → decode changed the messages")
            var instance = fixture()
            _ = instance.receive(decoded.messages, from: "fuzz:1", now: 1_000)
            _ = instance.tick(now: 60_000)
        }
        if let states = try? GossipCodec.decodeState(bytes, membersMax: 4_096) {
            precondition((try? GossipCodec.decodeState(GossipCodec.encodeState(states), membersMax: 4_096)) == states,
                         "state decode → encode → decode changed the state")
            var instance = fixture()
            _ = instance.receivePushPull(states, from: "fuzz:1", now: 1_000)
            _ = instance.tick(now: 60_000)
        }
    }

    static func fixture() -> MembershipInstance {
        let me = MemberIdentity(name: try! NodeName("fuzz"), region: try! RegionID("eu"), bootID: 1, gossipAddress: "fuzz:0",
                                httpAddress: "fuzz:0")
        var instance = MembershipInstance(me: me, pool: .federation, settings: .loopback, seeds: [], randomSeed: 1, now: 0)
        instance.adopt([MemberState(identity: MemberIdentity(name: try! NodeName("peer"), region: try! RegionID("eu"), bootID: 1,
                                                             gossipAddress: "peer:0", httpAddress: "peer:0"),
                                    incarnation: 0, status: .alive)], now: 0)
        return instance
    }
}
