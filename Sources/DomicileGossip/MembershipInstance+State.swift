import DomicileModel

extension MembershipInstance {
    mutating func handle(_ message: GossipMessage, from address: String, now: Int64, _ directives: inout [Directive]) {
        switch message {
        case .ping, .indirectPing, .ack, .nack:
            handleProbeMessage(message, from: address, now: now, &directives)
        case .alive(let incarnation, let identity):
            applyAlive(incarnation: incarnation, identity: identity, now: now, &directives)
        case .suspect(let incarnation, let name, let accuser):
            applySuspect(incarnation: incarnation, name: name, accuser: accuser, now: now, &directives)
        case .dead(let incarnation, let name, let accuser):
            applyDead(incarnation: incarnation, name: name, accuser: accuser, now: now, &directives)
        }
    }

    /// alive(i) replaces what is known only with a higher incarnation (a
    /// suspect at the same incarnation stays suspect: only the member itself
    /// can refute, by incrementing). A message about ourselves from another
    /// boot or address (our previous life) is refuted.
    mutating func applyAlive(incarnation: UInt64, identity: MemberIdentity, now: Int64, _ directives: inout [Directive]) {
        if identity.name == me.name {
            if (identity.bootID != me.bootID || identity.gossipAddress != me.gossipAddress) && incarnation >= self.incarnation && !hasLeft {
                refute(above: incarnation, &directives)
            }
            return
        }
        // The region pool is for one region only: a stray member is ignored.
        guard pool == .federation || identity.region == me.region else { return }
        remember(identity, now: now)
        guard var member = members[identity.name] else {
            insert(identity, incarnation: incarnation, status: .alive, now: now, &directives)
            broadcasts.enqueue(.alive(incarnation: incarnation, identity: identity), about: identity.name)
            return
        }
        guard incarnation > member.incarnation else { return }
        let wasLive = member.status.isLive
        member.identity = identity
        member.incarnation = incarnation
        if member.status != .alive {
            member.status = .alive
            member.statusChangedAt = now
        }
        members[identity.name] = member
        suspicions[identity.name] = nil
        if !wasLive {
            liveCount += 1
            // A dead member stays in `order` until reaped, so it is usually still there.
            if !order.contains(identity.name) { insertIntoOrder(identity.name) }
        }
        broadcasts.enqueue(.alive(incarnation: incarnation, identity: identity), about: identity.name)
        directives.append(.changed(member))
    }

    /// suspect(i) applies to an alive member at incarnation ≤ i; a second
    /// accuser of a suspect member confirms the suspicion. About ourselves: refute.
    mutating func applySuspect(incarnation: UInt64, name: NodeName, accuser: NodeName, now: Int64, _ directives: inout [Directive]) {
        if name == me.name {
            if incarnation >= self.incarnation && !hasLeft {
                refute(above: incarnation, &directives)
                // Being suspected hints that we are the slow one.
                adjustAwareness(1)
            }
            return
        }
        guard var member = members[name], incarnation >= member.incarnation else { return }
        switch member.status {
        case .alive:
            member.status = .suspect
            member.incarnation = incarnation
            member.statusChangedAt = now
            members[name] = member
            let size = clusterSize
            let minimum = Suspicion.minimumTimeout(clusterSize: size, settings: settings)
            let maximum = settings.lifeguard ? minimum * Int64(settings.suspicionMaxTimeoutMultiplier) : minimum
            var expected = settings.lifeguard ? max(0, settings.suspicionMultiplier - 2) : 0
            if size - 2 < expected { expected = 0 }
            suspicions[name] = Suspicion(incarnation: incarnation, startedAt: now, minimumMilliseconds: minimum,
                                         maximumMilliseconds: maximum, expectedConfirmations: expected, firstAccuser: accuser)
            broadcasts.enqueue(.suspect(incarnation: incarnation, name: name, accuser: accuser), about: name)
            counters.suspicions += 1
            directives.append(.changed(member))
        case .suspect:
            if incarnation > member.incarnation {
                member.incarnation = incarnation
                members[name] = member
            }
            if var suspicion = suspicions[name], accuser != suspicion.firstAccuser,
               suspicion.confirmations.insert(accuser).inserted {
                suspicions[name] = suspicion
                // Pass confirmations on, so others' timers fall too.
                broadcasts.enqueue(.suspect(incarnation: incarnation, name: name, accuser: accuser), about: name)
            }
        case .dead, .left:
            break
        }
    }

    /// dead(i) ends a member at incarnation ≤ i; from the member itself it
    /// means it left. About ourselves (and we have not left): refute.
    mutating func applyDead(incarnation: UInt64, name: NodeName, accuser: NodeName, now: Int64, _ directives: inout [Directive]) {
        if name == me.name {
            if incarnation >= self.incarnation && !hasLeft { refute(above: incarnation, &directives) }
            return
        }
        guard var member = members[name], incarnation >= member.incarnation, member.status.isLive else { return }
        member.status = accuser == name ? .left : .dead
        member.incarnation = incarnation
        member.statusChangedAt = now
        members[name] = member
        suspicions[name] = nil
        liveCount -= 1
        graveyard.append((name, now))
        broadcasts.enqueue(.dead(incarnation: incarnation, name: name, accuser: accuser), about: name)
        if member.status == .dead { counters.declaredDead += 1 }
        directives.append(.changed(member))
    }

    mutating func insert(_ identity: MemberIdentity, incarnation: UInt64, status: MemberStatus, now: Int64,
                         _ directives: inout [Directive]) {
        guard pool == .federation || identity.region == me.region else { return }
        let member = Member(identity: identity, incarnation: incarnation, status: status, statusChangedAt: now)
        members[identity.name] = member
        remember(identity, now: now)
        if status.isLive {
            liveCount += 1
            insertIntoOrder(identity.name)
        } else {
            graveyard.append((identity.name, now))
        }
        directives.append(.changed(member))
    }

    mutating func remember(_ identity: MemberIdentity, now: Int64) {
        remembered[identity.gossipAddress] = nil
        if seeds.contains(identity.gossipAddress) { seedNames[identity.gossipAddress] = identity.name }
    }

    /// Adds a member at a random place in the probe order in O(1): append,
    /// then swap with a random position (memberlist does the same).
    mutating func insertIntoOrder(_ name: NodeName) {
        order.append(name)
        let index = Int.random(in: 0..<order.count, using: &rng)
        order.swapAt(index, order.count - 1)
    }

    /// Someone believes an older us: outbid it and say so. The codec refuses
    /// incarnations above `GossipCodec.incarnationMax`; should one arrive by
    /// another path, ours saturates there instead of trapping.
    mutating func refute(above incarnation: UInt64, _ directives: inout [Directive]) {
        let highest = max(self.incarnation, incarnation)
        self.incarnation = highest < GossipCodec.incarnationMax ? highest + 1 : GossipCodec.incarnationMax
        broadcasts.enqueue(.alive(incarnation: self.incarnation, identity: me), about: me.name)
        counters.refutations += 1
        directives.append(.changed(selfMember))
    }

    /// Suspicions whose timers ran out become deaths.
    mutating func expireSuspicions(now: Int64, _ directives: inout [Directive]) {
        guard !suspicions.isEmpty else { return }
        for (name, suspicion) in suspicions.sorted(by: { $0.key < $1.key }) where now >= suspicion.deadline {
            applyDead(incarnation: suspicion.incarnation, name: name, accuser: me.name, now: now, &directives)
        }
    }

    /// Drops dead and left members after the retention time, and forgets
    /// peer addresses not seen for `peerMemoryMilliseconds`.
    mutating func reap(now: Int64) {
        var reaped = Set<NodeName>()
        while let oldest = graveyard.first, now - oldest.at >= settings.deadMemberRetentionMilliseconds {
            graveyard.removeFirst()
            // The member may have come back (and died again later) since.
            if let member = members[oldest.name], !member.status.isLive, member.statusChangedAt == oldest.at {
                members[oldest.name] = nil
                reaped.insert(oldest.name)
                if remembered.count < Self.rememberedPeersMax {
                    remembered[member.identity.gossipAddress] = (member.name, now)
                }
            }
        }
        if !reaped.isEmpty {
            order.removeAll { reaped.contains($0) }
            cursor = min(cursor, order.count)
        }
        if !remembered.isEmpty {
            remembered = remembered.filter { now - $0.value.at < settings.peerMemoryMilliseconds }
        }
    }

    /// A peer to push-pull with that this node does not count as alive: a
    /// seed, a member it believes dead, or the address of one it has
    /// reaped. After a partition, that is how the two sides find each other.
    /// Candidates are sampled, so this is O(1) whatever the cluster size.
    mutating func rejoinTarget(now: Int64) -> String? {
        for _ in 0..<8 {
            switch Int.random(in: 0..<3, using: &rng) {
            case 0:
                guard let seed = seeds.randomElement(using: &rng) else { continue }
                if let name = seedNames[seed], let member = members[name], member.status.isLive { continue }
                return seed
            case 1:
                guard !order.isEmpty else { continue }
                let name = order[Int.random(in: 0..<order.count, using: &rng)]
                if let member = members[name], !member.status.isLive { return member.identity.gossipAddress }
            default:
                let addresses = remembered.keys.sorted()
                guard let address = addresses.randomElement(using: &rng), let peer = remembered[address] else { continue }
                if let member = members[peer.name], member.status.isLive { continue }
                return address
            }
        }
        return nil
    }
}
