@testable import DomicileGossip
import DomicileModel

func identity(_ name: String, region: String = "eu", boot: UInt64 = 1, address: String? = nil) -> MemberIdentity {
    MemberIdentity(name: try! NodeName(name), region: try! RegionID(region), bootID: boot,
                   gossipAddress: address ?? "\(name):7300", httpAddress: "\(name):7100")
}

func node(_ name: String) -> NodeName { try! NodeName(name) }

extension MembershipSettings {
    static var test: MembershipSettings {
        var settings = MembershipSettings.lan
        settings.pushPullIntervalMilliseconds = 1_000_000
        settings.rejoinIntervalMilliseconds = 1_000_000
        return settings
    }
}

/// An instance that already knows `peers` as alive members.
func instance(_ name: String = "a", peers: [String] = ["b", "c", "d", "e"], settings: MembershipSettings = .test,
              pool: Pool = .region, now: Int64 = 0) -> MembershipInstance {
    var instance = MembershipInstance(me: identity(name), pool: pool, settings: settings, seeds: [], randomSeed: 42, now: now)
    let states = peers.map { MemberState(identity: identity($0), incarnation: 0, status: .alive) }
    _ = instance.receivePushPull(states, from: "\(peers.first ?? "b"):7300", now: now)
    return instance
}

extension Array where Element == MembershipInstance.Directive {
    var sends: [(messages: [GossipMessage], to: String)] {
        compactMap { if case .send(let messages, let to) = $0 { return (messages, to) } else { return nil } }
    }

    var pushPulls: [String] {
        compactMap { if case .pushPull(let address) = $0 { return address } else { return nil } }
    }

    var changes: [Member] {
        compactMap { if case .changed(let member) = $0 { return member } else { return nil } }
    }

    var nextTick: Int64? {
        compactMap { if case .scheduleTick(let at) = $0 { return at } else { return nil } }.last
    }

    /// Every message sent, flattened.
    var messages: [GossipMessage] { sends.flatMap(\.messages) }
}
