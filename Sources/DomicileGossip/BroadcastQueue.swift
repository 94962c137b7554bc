import DomicileModel

/// State messages waiting to be piggybacked or gossiped. Each is sent a
/// bounded number of times (retransmit multiplier · ceil(log10(n + 1))),
/// least-sent first; a newer message about a member replaces older ones.
struct BroadcastQueue: Sendable {
    struct Item: Sendable {
        let subject: NodeName
        let message: GossipMessage
        var transmits: Int
        let order: UInt64
    }

    private(set) var items: [Item] = []
    private var counter: UInt64 = 0

    var isEmpty: Bool { items.isEmpty }

    mutating func enqueue(_ message: GossipMessage, about subject: NodeName) {
        items.removeAll { $0.subject == subject }
        counter += 1
        items.append(Item(subject: subject, message: message, transmits: 0, order: counter))
    }

    /// Takes messages that fit in `budget` bytes, counting a transmission for
    /// each and dropping those that reached `limit`.
    mutating func take(budget: Int, limit: Int) -> [GossipMessage] {
        guard !items.isEmpty, budget > 0 else { return [] }
        items.sort { $0.transmits != $1.transmits ? $0.transmits < $1.transmits : $0.order > $1.order }
        var remaining = budget
        var taken: [GossipMessage] = []
        for index in items.indices {
            let size = GossipCodec.encodedSize(items[index].message)
            guard size <= remaining else { continue }
            remaining -= size
            taken.append(items[index].message)
            items[index].transmits += 1
            if taken.count >= 200 { break }
        }
        items.removeAll { $0.transmits >= limit }
        return taken
    }
}

extension MembershipInstance {
    var retransmitLimit: Int {
        settings.retransmitMultiplier * Int(log10(Double(clusterSize + 1)).rounded(.up))
    }

    /// `messages` plus as many queued broadcasts as fit in one packet.
    mutating func packet(_ messages: [GossipMessage], budgetFor address: String) -> [GossipMessage] {
        let used = 1 + messages.reduce(0) { $0 + GossipCodec.encodedSize($1) }
        let budget = settings.packetBytesMax - GossipCodec.packetOverhead - used
        return messages + broadcasts.take(budget: budget, limit: max(retransmitLimit, 1))
    }

    /// A gossip round: queued broadcasts to a few random members, including
    /// members recently declared dead (so a wrongly declared one can refute).
    mutating func gossip(now: Int64, _ directives: inout [Directive]) {
        guard !broadcasts.isEmpty else { return }
        let retention = settings.deadMemberRetentionMilliseconds
        let targets = randomMembers(settings.gossipFanout, where: { member in
            member.status.isLive || now - member.statusChangedAt < retention
        })
        for target in targets {
            let messages = packet([], budgetFor: target.identity.gossipAddress)
            guard !messages.isEmpty else { break }
            directives.append(.send(messages, to: target.identity.gossipAddress))
        }
    }
}

import Foundation
