import DomicileModel

/// A direct probe in progress.
struct Probe: Sendable {
    let target: NodeName
    let targetAddress: String
    let seq: UInt32
    /// When the direct probe gives up and indirect probes go out.
    let timeoutAt: Int64
    /// When the probe round ends; without an ack by then, the target is suspect.
    let endsAt: Int64
    var acked = false
    var indirectSent = false
    var expectedNacks = 0
    var nacks = 0
}

/// A probe this node makes on another's behalf.
struct Relay: Sendable {
    let requesterAddress: String
    let requesterSeq: UInt32
    let deadline: Int64
}

extension MembershipInstance {
    mutating func advanceProbe(now: Int64, _ directives: inout [Directive]) {
        if var current = probe {
            if !current.acked && !current.indirectSent && now >= current.timeoutAt {
                sendIndirectProbes(&current, &directives)
            }
            if now >= current.endsAt {
                probe = nil
                finish(current, now: now, &directives)
            } else {
                probe = current
            }
        }
        if probe == nil && now >= nextProbeAt { startProbe(now: now, &directives) }
    }

    /// Probes the next member in the shuffled order (round-robin, as
    /// memberlist: every member is probed once per round).
    mutating func startProbe(now: Int64, _ directives: inout [Directive]) {
        let interval = settings.probeIntervalMilliseconds * healthScale
        nextProbeAt = now + interval
        guard let target = nextProbeTarget() else { return }
        let seq = nextSequence()
        var messages = [GossipMessage.ping(seq: seq, target: target.name, source: me.name)]
        // Lifeguard buddy system: tell a suspect member it is suspected, so it can refute now.
        if settings.lifeguard && target.status == .suspect {
            messages.append(.suspect(incarnation: target.incarnation, name: target.name, accuser: me.name))
        }
        directives.append(.send(packet(messages, budgetFor: target.identity.gossipAddress), to: target.identity.gossipAddress))
        probe = Probe(target: target.name, targetAddress: target.identity.gossipAddress, seq: seq,
                      timeoutAt: now + settings.probeTimeoutMilliseconds * healthScale, endsAt: now + interval)
        counters.probes += 1
    }

    mutating func nextProbeTarget() -> Member? {
        for _ in 0...order.count {
            if cursor >= order.count {
                order.shuffle(using: &rng)
                cursor = 0
                if order.isEmpty { return nil }
            }
            let name = order[cursor]
            cursor += 1
            if let member = members[name], member.status.isLive { return member }
        }
        return nil
    }

    mutating func sendIndirectProbes(_ probe: inout Probe, _ directives: inout [Directive]) {
        probe.indirectSent = true
        let target = probe.target
        let helpers = randomMembers(settings.indirectChecks, where: { $0.status == .alive && $0.name != target })
        for helper in helpers {
            let message = GossipMessage.indirectPing(seq: probe.seq, target: target, targetAddress: probe.targetAddress,
                                                     requester: me.name, requesterAddress: me.gossipAddress)
            directives.append(.send(packet([message], budgetFor: helper.identity.gossipAddress), to: helper.identity.gossipAddress))
        }
        probe.expectedNacks = settings.lifeguard ? helpers.count : 0
        counters.indirectProbes += helpers.count
    }

    /// The probe round is over: an ack makes us a little healthier; silence
    /// makes the target suspect, and missing nacks suggest that we, not the
    /// target, are the slow one (Lifeguard).
    mutating func finish(_ probe: Probe, now: Int64, _ directives: inout [Directive]) {
        if probe.acked {
            adjustAwareness(-1)
            return
        }
        if probe.expectedNacks > 0 { adjustAwareness(probe.expectedNacks - probe.nacks) }
        guard let target = members[probe.target], target.status == .alive else { return }
        applySuspect(incarnation: target.incarnation, name: target.name, accuser: me.name, now: now, &directives)
    }

    mutating func handleProbeMessage(_ message: GossipMessage, from address: String, now: Int64, _ directives: inout [Directive]) {
        switch message {
        case .ping(let seq, let target, _):
            guard target == me.name, !hasLeft else { return }
            directives.append(.send(packet([.ack(seq: seq, source: me.name)], budgetFor: address), to: address))
        case .indirectPing(let seq, let target, let targetAddress, _, let requesterAddress):
            guard !hasLeft else { return }
            let relaySeq = nextSequence()
            relays[relaySeq] = Relay(requesterAddress: requesterAddress, requesterSeq: seq,
                                     deadline: now + settings.probeTimeoutMilliseconds)
            directives.append(.send(packet([.ping(seq: relaySeq, target: target, source: me.name)], budgetFor: targetAddress),
                                    to: targetAddress))
        case .ack(let seq, _):
            if let relay = relays.removeValue(forKey: seq) {
                directives.append(.send(packet([.ack(seq: relay.requesterSeq, source: me.name)], budgetFor: relay.requesterAddress),
                                        to: relay.requesterAddress))
            } else if probe?.seq == seq {
                probe?.acked = true
            }
        case .nack(let seq, _):
            if probe?.seq == seq { probe?.nacks += 1 }
        default:
            break
        }
    }

    /// Relayed probes that got no ack: tell the requester we tried (nack).
    mutating func expireRelays(now: Int64, _ directives: inout [Directive]) {
        guard !relays.isEmpty else { return }
        // Sorted: dictionary order varies between processes, and a run must replay from its seed.
        for (seq, relay) in relays.sorted(by: { $0.key < $1.key }) where now >= relay.deadline {
            relays[seq] = nil
            if settings.lifeguard {
                directives.append(.send(packet([.nack(seq: relay.requesterSeq, source: me.name)], budgetFor: relay.requesterAddress),
                                        to: relay.requesterAddress))
            }
        }
    }
}
