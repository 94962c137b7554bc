@testable import DomicileGossip
import DomicileModel
import XCTest

final class MembershipInstanceTests: XCTestCase {
    func test_start_pushPullsWithEverySeed_andSchedulesATick() {
        var member = MembershipInstance(me: identity("a"), pool: .region, settings: .lan, seeds: ["b:7300", "c:7300", "a:7300"],
                                        randomSeed: 1, now: 0)
        XCTAssertFalse(member.joined)
        let directives = member.start(now: 0)
        XCTAssertEqual(Set(directives.pushPulls), ["b:7300", "c:7300"], "never itself")
        XCTAssertNotNil(directives.nextTick)
        _ = member.receivePushPull([MemberState(identity: identity("b"), incarnation: 0, status: .alive)], from: "b:7300", now: 10)
        XCTAssertTrue(member.joined)
        XCTAssertEqual(member.members[node("b")]?.status, .alive)
    }

    func test_ping_isAnsweredWithAnAck_toTheSender() {
        var member = instance()
        let directives = member.receive([.ping(seq: 9, target: node("a"), source: node("b"))], from: "b:7300", now: 5)
        XCTAssertEqual(directives.sends.first?.to, "b:7300")
        XCTAssertEqual(directives.sends.first?.messages.first, .ack(seq: 9, source: node("a")))
        let misdirected = member.receive([.ping(seq: 10, target: node("zz"), source: node("b"))], from: "b:7300", now: 6)
        XCTAssertTrue(misdirected.sends.isEmpty, "a ping for another node is not acked")
    }

    /// One full probe round with no answer: direct ping, indirect pings to k
    /// members at the timeout, suspicion at the end of the round.
    func test_probe_withoutAck_goesIndirect_thenSuspects() throws {
        var member = instance()
        let start = try XCTUnwrap(runUntilProbe(&member))
        let ping = try XCTUnwrap(start.directives.sends.first { if case .ping = $0.messages.first { return true } else { return false } })
        guard case .ping(let seq, let target, _) = ping.messages[0] else { return XCTFail() }
        XCTAssertEqual(ping.to, "\(target):7300")

        let atTimeout = member.tick(now: start.time + MembershipSettings.test.probeTimeoutMilliseconds)
        let indirect = atTimeout.messages.compactMap { message -> NodeName? in
            if case .indirectPing(let indirectSeq, let indirectTarget, _, let requester, _) = message {
                XCTAssertEqual(indirectSeq, seq)
                XCTAssertEqual(requester, node("a"))
                return indirectTarget
            }
            return nil
        }
        XCTAssertEqual(indirect.count, 3, "k = 3 indirect probes")
        XCTAssertTrue(indirect.allSatisfy { $0 == target })
        XCTAssertFalse(atTimeout.sends.contains { $0.to == ping.to }, "the target itself is not asked")

        let atEnd = member.tick(now: start.time + MembershipSettings.test.probeIntervalMilliseconds)
        XCTAssertEqual(member.members[target]?.status, .suspect)
        XCTAssertEqual(atEnd.changes.first?.status, .suspect)
        XCTAssertEqual(member.awareness, 3, "three nacks expected, none came: we may be the slow one")
    }

    func test_probe_ackedDirectly_keepsTheTargetAlive_andImprovesHealth() throws {
        var member = instance()
        member.adjustAwareness(2)
        let start = try XCTUnwrap(runUntilProbe(&member))
        guard case .ping(let seq, let target, _) = start.directives.messages.first(where: { if case .ping = $0 { true } else { false } })! else {
            return XCTFail()
        }
        _ = member.receive([.ack(seq: seq, source: target)], from: "\(target):7300", now: start.time + 10)
        // Health scales the round: (awareness + 1) × interval.
        _ = member.tick(now: start.time + 3 * MembershipSettings.test.probeIntervalMilliseconds)
        XCTAssertEqual(member.members[target]?.status, .alive)
        XCTAssertEqual(member.awareness, 1)
    }

    func test_nacks_fromIndirectProbers_spareOurHealth() throws {
        var member = instance()
        let start = try XCTUnwrap(runUntilProbe(&member))
        let atTimeout = member.tick(now: start.time + MembershipSettings.test.probeTimeoutMilliseconds)
        for message in atTimeout.messages {
            if case .indirectPing(let seq, _, _, _, _) = message {
                _ = member.receive([.nack(seq: seq, source: node("b"))], from: "b:7300", now: start.time + 600)
            }
        }
        _ = member.tick(now: start.time + MembershipSettings.test.probeIntervalMilliseconds)
        XCTAssertEqual(member.awareness, 0, "every helper answered: the target is the problem, not us")
    }

    func test_relay_forwardsTheTargetsAck_orSendsANack() throws {
        var relay = instance("b", peers: ["a", "c"])
        let request = relay.receive([.indirectPing(seq: 77, target: node("c"), targetAddress: "c:7300",
                                                   requester: node("a"), requesterAddress: "a:7300")], from: "a:7300", now: 100)
        let ping = try XCTUnwrap(request.sends.first)
        XCTAssertEqual(ping.to, "c:7300")
        guard case .ping(let relaySeq, node("c"), node("b")) = ping.messages[0] else { return XCTFail("\(ping.messages)") }
        let forwarded = relay.receive([.ack(seq: relaySeq, source: node("c"))], from: "c:7300", now: 150)
        XCTAssertEqual(forwarded.sends.first?.to, "a:7300")
        XCTAssertEqual(forwarded.sends.first?.messages.first, .ack(seq: 77, source: node("b")))

        _ = relay.receive([.indirectPing(seq: 78, target: node("c"), targetAddress: "c:7300",
                                         requester: node("a"), requesterAddress: "a:7300")], from: "a:7300", now: 200)
        let silence = relay.tick(now: 200 + MembershipSettings.test.probeTimeoutMilliseconds)
        XCTAssertTrue(silence.sends.contains { $0.to == "a:7300" && $0.messages.first == .nack(seq: 78, source: node("b")) })

        var plain = MembershipSettings.test
        plain.lifeguard = false
        var oldSchool = instance("b", peers: ["a", "c"], settings: plain)
        _ = oldSchool.receive([.indirectPing(seq: 79, target: node("c"), targetAddress: "c:7300",
                                             requester: node("a"), requesterAddress: "a:7300")], from: "a:7300", now: 200)
        XCTAssertFalse(oldSchool.tick(now: 800).messages.contains { if case .nack = $0 { true } else { false } }, "no nacks without Lifeguard")
    }

    func test_suspicion_expiresIntoDeath_soonerWithConfirmations() {
        let settings = MembershipSettings.test
        let peers = (1...9).map { "p\($0)" }
        // Without confirmations: the maximum timeout.
        var alone = instance(peers: peers)
        _ = alone.receive([.suspect(incarnation: 0, name: node("p1"), accuser: node("p2"))], from: "p2:7300", now: 1_000)
        let minimum = Suspicion.minimumTimeout(clusterSize: 10, settings: settings)
        XCTAssertEqual(minimum, 4_000, "4 · log10(10) · 1 s")
        let maximum = minimum * Int64(settings.suspicionMaxTimeoutMultiplier)
        _ = alone.tick(now: 1_000 + maximum - 1)
        XCTAssertEqual(alone.members[node("p1")]?.status, .suspect)
        let death = alone.tick(now: 1_000 + maximum)
        XCTAssertEqual(alone.members[node("p1")]?.status, .dead)
        XCTAssertTrue(death.changes.contains { $0.name == node("p1") && $0.status == .dead })
        XCTAssertEqual(alone.counters.declaredDead, 1)

        // With k = multiplier − 2 = 2 independent confirmations: the minimum.
        var confirmed = instance(peers: peers)
        _ = confirmed.receive([.suspect(incarnation: 0, name: node("p1"), accuser: node("p2"))], from: "p2:7300", now: 1_000)
        _ = confirmed.receive([.suspect(incarnation: 0, name: node("p1"), accuser: node("p3"))], from: "p3:7300", now: 1_100)
        _ = confirmed.receive([.suspect(incarnation: 0, name: node("p1"), accuser: node("p3"))], from: "p3:7300", now: 1_150)
        _ = confirmed.receive([.suspect(incarnation: 0, name: node("p1"), accuser: node("p4"))], from: "p4:7300", now: 1_200)
        _ = confirmed.tick(now: 1_000 + minimum)
        XCTAssertEqual(confirmed.members[node("p1")]?.status, .dead, "two distinct confirmations bring the timeout to the minimum")
    }

    func test_suspicionTimeout_fallsLogarithmicallyWithConfirmations() {
        let values = (0...3).map { Suspicion.timeout(confirmations: $0, expected: 3, minimum: 1_000, maximum: 6_000) }
        XCTAssertEqual(values[0], 6_000)
        XCTAssertEqual(values[3], 1_000)
        XCTAssertTrue(values[1] > values[2] && values[2] > values[3])
        XCTAssertEqual(Suspicion.timeout(confirmations: 5, expected: 0, minimum: 1_000, maximum: 6_000), 1_000)
    }

    func test_suspectedOrDeclaredDead_memberRefutes_withAHigherIncarnation() {
        var member = instance()
        let suspected = member.receive([.suspect(incarnation: 0, name: node("a"), accuser: node("b"))], from: "b:7300", now: 10)
        XCTAssertEqual(member.incarnation, 1)
        XCTAssertEqual(member.awareness, 1, "an accusation hints at our own slowness")
        XCTAssertEqual(suspected.changes.first?.incarnation, 1)
        XCTAssertEqual(member.counters.refutations, 1)
        // The refutation rides on the next packet.
        let reply = member.receive([.ping(seq: 1, target: node("a"), source: node("b"))], from: "b:7300", now: 20)
        XCTAssertTrue(reply.messages.contains(.alive(incarnation: 1, identity: identity("a"))))

        _ = member.receive([.dead(incarnation: 3, name: node("a"), accuser: node("c"))], from: "c:7300", now: 30)
        XCTAssertEqual(member.incarnation, 4)
        _ = member.receive([.suspect(incarnation: 2, name: node("a"), accuser: node("c"))], from: "c:7300", now: 40)
        XCTAssertEqual(member.incarnation, 4, "old accusations are ignored")
    }

    func test_incarnationPrecedence_followsSWIM() {
        var member = instance()
        let b = node("b")
        _ = member.receive([.suspect(incarnation: 0, name: b, accuser: node("c"))], from: "c:7300", now: 10)
        XCTAssertEqual(member.members[b]?.status, .suspect)
        _ = member.receive([.alive(incarnation: 0, identity: identity("b"))], from: "c:7300", now: 20)
        XCTAssertEqual(member.members[b]?.status, .suspect, "alive at the same incarnation does not clear a suspicion")
        _ = member.receive([.alive(incarnation: 1, identity: identity("b"))], from: "b:7300", now: 30)
        XCTAssertEqual(member.members[b]?.status, .alive, "a refutation clears it")
        _ = member.receive([.suspect(incarnation: 0, name: b, accuser: node("c"))], from: "c:7300", now: 40)
        XCTAssertEqual(member.members[b]?.status, .alive, "a stale suspicion is ignored")
        _ = member.receive([.dead(incarnation: 1, name: b, accuser: node("c"))], from: "c:7300", now: 50)
        XCTAssertEqual(member.members[b]?.status, .dead)
        _ = member.receive([.alive(incarnation: 1, identity: identity("b"))], from: "c:7300", now: 60)
        XCTAssertEqual(member.members[b]?.status, .dead, "dead at i beats alive at i")
        _ = member.receive([.alive(incarnation: 2, identity: identity("b"))], from: "b:7300", now: 70)
        XCTAssertEqual(member.members[b]?.status, .alive, "only a higher incarnation revives")
    }

    func test_leave_isSpread_andRecordedAsLeftByOthers() {
        var leaving = instance("b", peers: ["a", "c", "d"])
        let goodbye = leaving.leave(now: 100)
        XCTAssertTrue(leaving.hasLeft)
        XCTAssertFalse(goodbye.sends.isEmpty, "told at once, not at the next gossip round")
        XCTAssertTrue(goodbye.sends.allSatisfy { $0.messages.contains(.dead(incarnation: 0, name: node("b"), accuser: node("b"))) })
        var other = instance()
        _ = other.receive(goodbye.sends[0].messages, from: "b:7300", now: 110)
        XCTAssertEqual(other.members[node("b")]?.status, .left)
        XCTAssertEqual(other.counters.declaredDead, 0, "a departure is not a death")
        XCTAssertTrue(leaving.receive([.ping(seq: 1, target: node("b"), source: node("a"))], from: "a:7300", now: 120).sends.isEmpty)
    }

    func test_buddySystem_tellsASuspectMemberWhenProbingIt() throws {
        var member = instance(peers: ["b"])
        _ = member.receive([.suspect(incarnation: 0, name: node("b"), accuser: node("c"))], from: "c:7300", now: 1)
        let start = try XCTUnwrap(runUntilProbe(&member))
        let ping = try XCTUnwrap(start.directives.sends.first { $0.to == "b:7300" })
        XCTAssertTrue(ping.messages.contains(.suspect(incarnation: 0, name: node("b"), accuser: node("a"))))
    }

    func test_restartedNode_withANewBootIDAndAddress_isAccepted() {
        var member = instance()
        _ = member.receive([.dead(incarnation: 5, name: node("b"), accuser: node("c"))], from: "c:7300", now: 10)
        _ = member.receive([.alive(incarnation: 0, identity: identity("b", boot: 2, address: "b2:7300"))], from: "b2:7300", now: 20)
        XCTAssertEqual(member.members[node("b")]?.status, .dead, "a lower incarnation is ignored…")

        // …until the restarted node learns of its past and outbids it.
        var restarted = MembershipInstance(me: identity("b", boot: 2, address: "b2:7300"), pool: .region, settings: .test,
                                           seeds: ["a:7300"], randomSeed: 7, now: 20)
        _ = restarted.receivePushPull(member.pushPullState(), from: "a:7300", now: 25)
        XCTAssertEqual(restarted.incarnation, 6)
        let announcement = restarted.receive([.ping(seq: 1, target: node("b"), source: node("a"))], from: "a:7300", now: 30)
        _ = member.receive(announcement.messages, from: "b2:7300", now: 35)
        XCTAssertEqual(member.members[node("b")]?.status, .alive)
        XCTAssertEqual(member.members[node("b")]?.identity.bootID, 2)
        XCTAssertEqual(member.members[node("b")]?.identity.gossipAddress, "b2:7300")
    }

    func test_deadMembers_areReaped_butTheirAddressesRemainForRejoining() {
        var settings = MembershipSettings.test
        settings.rejoinIntervalMilliseconds = 500
        // No probing in this test: nobody would answer, and c must stay alive.
        settings.probeIntervalMilliseconds = 10_000_000
        settings.probeTimeoutMilliseconds = 5_000_000
        var member = instance(peers: ["b", "c"], settings: settings)
        _ = member.receive([.dead(incarnation: 0, name: node("b"), accuser: node("c"))], from: "c:7300", now: 100)
        _ = member.tick(now: 100 + settings.deadMemberRetentionMilliseconds + 1_000)
        XCTAssertNil(member.members[node("b")], "reaped after the retention time")
        var rejoins: [String] = []
        for step in 1...40 { rejoins += member.tick(now: 100 + settings.deadMemberRetentionMilliseconds + 1_000 + Int64(step) * 500).pushPulls }
        XCTAssertTrue(rejoins.contains("b:7300"), "a remembered peer is retried, so a healed partition heals membership")
        XCTAssertFalse(rejoins.contains("c:7300"), "a live member is not a rejoin target")
    }

    func test_regionPool_ignoresMembersOfOtherRegions() {
        var regional = instance()
        _ = regional.receive([.alive(incarnation: 0, identity: identity("us-1", region: "us"))], from: "us-1:7300", now: 1)
        XCTAssertNil(regional.members[node("us-1")])
        var federation = instance(pool: .federation)
        _ = federation.receive([.alive(incarnation: 0, identity: identity("us-1", region: "us"))], from: "us-1:7300", now: 1)
        XCTAssertEqual(federation.members[node("us-1")]?.status, .alive)
    }

    func test_packets_stayWithinThePacketBudget() {
        var member = instance(peers: (1...300).map { "member-\($0)" })
        var largest = 0
        for step in 0..<50 {
            for send in member.tick(now: Int64(step) * 100).sends {
                largest = max(largest, GossipCodec.encode(send.messages).count + GossipCodec.packetOverhead)
            }
        }
        XCTAssertGreaterThan(largest, 1_000, "the queue of 300 alive messages fills packets")
        XCTAssertLessThanOrEqual(largest, MembershipSettings.test.packetBytesMax)
    }

    /// Ticks until a probe starts; returns its time and directives.
    private func runUntilProbe(_ member: inout MembershipInstance) -> (time: Int64, directives: [MembershipInstance.Directive])? {
        var now: Int64 = 0
        for _ in 0..<100 {
            now += 50
            let directives = member.tick(now: now)
            if directives.messages.contains(where: { if case .ping = $0 { true } else { false } }) { return (now, directives) }
        }
        return nil
    }
}
