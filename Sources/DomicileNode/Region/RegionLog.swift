import CLinux
import DomicileConsensus
import DomicileCrypto
import DomicileModel
import DomicileNet
import DomicileStorage
import Foundation

/// The shell around this node's `RaftNode`: the region log that makes the
/// region's nodes one store (DESIGN.md section 7, docs/REGION_LOG.md).
///
/// One driver thread owns the machine and `raft.sqlite`. It takes ticks,
/// peers' messages (from the region channel) and the writer's proposals,
/// and for each `Ready` persists (one fsync), then sends, then hands the
/// committed entries to the writer thread, which applies them in order.
///
/// The leader's writes: the group-commit writer runs a batch in its
/// transaction as before; just before COMMIT, `replicate` proposes the
/// batch's changeset and waits, the transaction open, until the entry is
/// committed by a majority. It then records the entry's index in
/// `region_log_applied` in the same transaction and commits: the batch
/// and its applied index are durable together, and the callers resume
/// after both. A proposal that cannot commit (no longer leader, no
/// majority within `commit_timeout_ms`) rolls the batch back with
/// `NoQuorum`; if its entry commits later after all, it is applied from
/// the log like any other.
///
/// Followers apply each committed entry in one transaction of its own
/// that also records the index (`Database.apply(_:alongside:)`), and bring
/// their keys and in-memory state along (`RegionFollower`).
final class RegionLog: @unchecked Sendable {
    /// What `/v1/cluster`, `/readyz` and `/metrics` show.
    struct Status: Sendable {
        var role: RaftRole = .follower
        var leader: NodeName?
        var term: UInt64 = 0
        var commitIndex: UInt64 = 0
        var lastIndex: UInt64 = 0
        var voters: [NodeName] = []
        var learners: [NodeName] = []
        /// Leader only: each other member's match index.
        var matchIndexes: [NodeName: UInt64] = [:]
        /// Leader only: the first index of its term, which must be applied
        /// before it serves (everything committed by earlier leaders).
        var termStartIndex: UInt64 = 0
        /// Monotonic milliseconds of the last message from the leader.
        var leaderContact: Int64 = 0
    }

    let name: NodeName
    let settings: NodeConfiguration.RegionLog
    let logger: Logger
    let store: Store
    private var writer: Writer { store.writer }
    let dataDirectory: String
    /// The roster file as last read: re-read at each channel handshake and
    /// when a node it does not list must be dialled, so a node added with
    /// `cluster add-node` is known without a restart.
    private let rosterFile: Locked<RegionRoster>
    /// Brings the node's keys and memory along with each entry it applies.
    let follower: RegionFollower

    /// Entries waiting for their predecessor (writer thread only).
    private var heldBack: [UInt64: LogEntry] = [:]
    private static let heldBackMax = 65_536
    /// Long work off the cooperative threads: snapshot backups, operators' waits.
    let blocking = BlockingPool(name: "region-log", threadsMax: 2)

    // Driver thread only.
    private var raft: RaftNode
    private let storage: RaftStorage
    private var inFlight: Proposal?
    private var nextTick: Int64 = 0

    let inbox = Inbox()
    private let shared = Locked(Shared())
    let statistics = Locked(Statistics())
    private let stopped = DispatchSemaphore(value: 0)
    private(set) var channel: RegionChannel?
    /// The snapshot this node serves to followers, and whether it is
    /// installing one (`RegionLog+Snapshots`).
    let snapshots = Locked(SnapshotState())

    struct SnapshotState: Sendable {
        var outgoing: (id: UInt64, reader: SnapshotChunkReader)?
        var installing = false
        var installed = 0
        var sent = 0
    }

    struct Shared {
        var status = Status()
        /// Everything through this index is applied to node.sqlite (or was
        /// an entry with nothing to apply).
        var appliedIndex: UInt64 = 0
        /// The leader's own entry, committed in the log, whose batch is
        /// being committed locally right now.
        var committing: (ticket: ProposalTicket, payload: [UInt8])?
        /// Set when an entry cannot be applied: the node stops applying and
        /// is not ready (its database diverged or its disk failed).
        var applyFailure: String?
    }

    struct Statistics: Sendable {
        var proposals = 0
        var proposalsRefused = 0
        var proposalMicroseconds = LatencySummary()
        var applyMicroseconds = LatencySummary()
        var entriesApplied = 0
        var messagesRefused = 0
    }

    /// Opens `raft.sqlite` in `dataDirectory` and restores the machine (a
    /// new region's node starts with every roster node as a voter; a
    /// joining node with no membership). `applied` is how far node.sqlite
    /// has applied the log: the last entry's index and term.
    init(name: NodeName, settings: NodeConfiguration.RegionLog, roster: RegionRoster, dataDirectory: String,
         applied: (index: UInt64, term: UInt64), store: Store, random: any RandomSource, now: Int64, logger: Logger,
         follower: RegionFollower) throws {
        self.name = name
        self.settings = settings
        self.rosterFile = Locked(roster)
        self.store = store
        self.dataDirectory = dataDirectory
        SnapshotChunkWriter.removeLeftovers(in: dataDirectory)
        Self.removeOutgoingLeftovers(in: dataDirectory)
        self.logger = logger
        self.follower = follower
        let storage = try RaftStorage(path: (dataDirectory as NSString).appendingPathComponent(RaftStorage.fileName), now: now)
        var draws = random.generator()
        let seed = UInt64.random(in: 0...UInt64.max, using: &draws)
        func restored() throws -> RaftNode {
            try Self.restore(name: name, storage: storage, roster: roster, join: settings.join, appliedIndex: applied.index,
                             settings: Self.raftSettings(settings), seed: seed)
        }
        var raft = try restored()
        if try Self.rebase(storage, ontoApplied: applied, membership: raft.membership) {
            logger.warning("region log rebased onto the applied state", ["index": .int(Int64(applied.index)), "term": .int(Int64(applied.term))])
            raft = try restored()
        }
        self.storage = storage
        self.raft = raft
        shared.withLock { $0.appliedIndex = max(applied.index, raft.appliedIndex) }
    }

    /// node.sqlite may hold a snapshot raft.sqlite never recorded: a crash
    /// between `install`'s restore and the machine's persist of the
    /// snapshot. Its applied state (committed: a leader sent it) is then
    /// past the log's end, or disagrees with the log's entry at its index
    /// (an uncommitted suffix of an older term). The log is rebased onto it
    /// as persisting the snapshot would have: a boundary at that index and
    /// term, with the membership the log knew last, and no entries; the
    /// leader sends what follows. Returns whether it did.
    static func rebase(_ storage: RaftStorage, ontoApplied applied: (index: UInt64, term: UInt64),
                       membership: Membership) throws -> Bool {
        guard applied.index > storage.snapshot.index else { return false }
        if applied.index <= storage.lastIndex, try storage.term(at: applied.index) == applied.term { return false }
        let hard = storage.hardState
        let term = max(hard.term, applied.term)
        let metadata = SnapshotMetadata(index: applied.index, term: applied.term, membership: membership)
        try storage.persist(hardState: RaftHardState(term: term, vote: term == hard.term ? hard.vote : nil, commit: applied.index),
                            snapshot: RaftSnapshotMetadata(index: applied.index, term: applied.term, configuration: RaftCodec.encode(metadata)))
        return true
    }

    static func raftSettings(_ configuration: NodeConfiguration.RegionLog) -> RaftSettings {
        var settings = RaftSettings()
        settings.electionTicks = configuration.electionTicks
        settings.heartbeatTicks = 1
        settings.entryBytesMax = entryBytesMax
        return settings
    }

    /// The largest entry (one batch's changeset); the channel's frames are
    /// sized to carry one with its message around it.
    static let entryBytesMax = 8 << 20

    private static func restore(name: NodeName, storage: RaftStorage, roster: RegionRoster, join: Bool, appliedIndex: UInt64,
                                settings: RaftSettings, seed: UInt64) throws -> RaftNode {
        let boundary = storage.snapshot
        if boundary.configuration.isEmpty && storage.lastIndex == 0 && storage.hardState.term == 0 {
            // A node whose log is gone must not vote again as if new: it may
            // have voted in a term the others are still in.
            guard join || appliedIndex == 0 else {
                throw RegionLog.Misconfigured(description: "raft.sqlite is empty but node.sqlite has applied the log through \(appliedIndex): "
                                              + "start this node with region_log.join and add it again (cluster join), or restore raft.sqlite")
            }
            let membership = join ? Membership.empty : try Membership(voters: roster.names)
            return try RaftNode(id: name, membership: membership, settings: settings, randomSeed: seed)
        }
        let metadata = boundary.configuration.isEmpty
            ? SnapshotMetadata(index: 0, term: 0, membership: .empty)
            : try RaftCodec.decodeSnapshotMetadata(boundary.configuration)
        let stored = try storage.entries(from: storage.firstIndex, upTo: storage.lastIndex + 1, byteCountMax: .max)
        let entries = try stored.map { try RaftCodec.decodeEntry($0.payload) }
        let hard = storage.hardState
        let vote = try hard.vote.map { try NodeName($0) }
        // node.sqlite may have applied (and so known committed) more than
        // the hard state had recorded when the node stopped.
        let commit = max(hard.commit, min(appliedIndex, storage.lastIndex))
        let state = PersistedState(hardState: HardState(term: hard.term, vote: vote, commit: commit),
                                   snapshot: Snapshot(metadata: metadata, payload: []), entries: entries)
        let applied = min(max(appliedIndex, metadata.index), commit)
        return try RaftNode(id: name, restoring: state, applied: applied, settings: settings, randomSeed: seed)
    }

    /// Starts the channel and the driver thread.
    func start(signing: Ed25519PrivateKey, regionKeys: KeySet, region: RegionID, random: any RandomSource,
               serve: @escaping @Sendable (ForwardedCall.Request) async -> ForwardedCall.Answer) throws {
        var channelSettings = RegionChannel.Settings.lan
        channelSettings.frameBytesMax = Self.entryBytesMax + ForwardedCall.bytesMax / 4
        channelSettings.queueBytesMax = 64 << 20
        // A restarted peer is dialled again within about an election timeout.
        channelSettings.reconnectMaxMilliseconds = min(channelSettings.reconnectMaxMilliseconds,
                                                       settings.tickMilliseconds * Int64(settings.electionTicks))
        let name = self.name
        channel = try RegionChannel(
            region: region, name: name, signing: signing, regionKeys: regionKeys, bind: settings.address,
            roster: { [weak self] in self?.rereadRoster().channelRoster ?? NodeRoster() },
            // Each dial reads the roster afresh: a node restarted on a new address is reached there.
            resolve: { [weak self] in self?.rereadRoster().node($0)?.channel }, random: random, settings: channelSettings,
            handlers: .init(
                message: { [weak self] peer, bytes in self?.received(bytes, from: peer) },
                request: { [weak self] _, bytes in
                    guard let self else { return [] }
                    if bytes.first == SnapshotTransfer.requestKind { return await serveSnapshot(bytes) }
                    guard let request = try? ForwardedCall.decodeRequest(bytes) else {
                        statistics.withLock { $0.messagesRefused += 1 }
                        return ForwardedCall.encode(.notLeader)
                    }
                    return ForwardedCall.encode(await serve(request))
                }))
        nextTick = monotonicMilliseconds() + settings.tickMilliseconds
        if raft.membership.voters == [name] { raft.campaign() }
        let thread = Thread { [self] in
            domicile_set_thread_name("domicile-raft")
            drive()
            stopped.signal()
        }
        thread.name = "domicile-raft"
        thread.start()
        logger.info("region log", ["node": .string(name.rawValue), "channel": .string(channel!.localAddress.description),
                                   "voters": .int(Int64(raft.membership.voters.count)), "last_index": .int(Int64(raft.lastIndex)),
                                   "applied_index": .int(Int64(appliedIndex))])
    }

    /// Stops the driver and the channel; proposals waiting fail.
    func stop() {
        if inbox.close() { stopped.wait() }
        channel?.stop()
        dropOutgoingSnapshot()
    }

    /// A node of the roster, re-reading the file when it is not listed.
    func roster(_ node: NodeName) -> RegionRoster.Node? {
        rosterFile.withLock { $0.node(node) } ?? rereadRoster().node(node)
    }

    /// The roster file now; the last good one when it cannot be read.
    @discardableResult
    private func rereadRoster() -> RegionRoster {
        guard let fresh = try? RegionRoster.load(path: settings.rosterPath), fresh.region == rosterFile.value.region else {
            return rosterFile.value
        }
        rosterFile.withLock { $0 = fresh }
        return fresh
    }

    var status: Status { shared.withLock { $0.status } }
    var appliedIndex: UInt64 { shared.withLock { $0.appliedIndex } }
    var applyFailure: String? { shared.withLock { $0.applyFailure } }
    var currentStatistics: Statistics { statistics.value }
    var channelAddress: SocketAddress? { channel?.localAddress }

    /// Whether this node is the leader and has applied everything earlier
    /// leaders committed, so it may serve.
    var isServingLeader: Bool {
        shared.withLock { $0.status.role == .leader && $0.appliedIndex >= $0.status.termStartIndex && $0.applyFailure == nil }
    }

    /// Why this node cannot take part in serving now, or nil: no leader it
    /// has heard from within an election timeout, or a failed apply.
    var unavailability: String? {
        let timeout = settings.tickMilliseconds * Int64(settings.electionTicks)
        return shared.withLock { shared in
            if let failure = shared.applyFailure { return "region log: \(failure)" }
            switch shared.status.role {
            case .leader: return nil
            default:
                guard shared.status.leader != nil, monotonicMilliseconds() - shared.status.leaderContact <= timeout else {
                    return "no_quorum"
                }
                return nil
            }
        }
    }

    // MARK: The writer's side (writer thread)

    /// `Writer.Settings.beforeCommit`: replicates the batch's changeset and
    /// records its index in the batch's transaction. Throws `NoQuorum`
    /// (the batch then rolls back) when the entry cannot be committed.
    func replicate(_ changeset: Changeset, in database: Database) throws {
        guard !changeset.isEmpty else { return }
        let payload = RegionCommand.encode(changeset)
        let started = monotonicMicroseconds()
        let proposal = Proposal(payload: payload)
        guard inbox.add(proposal: proposal) else { throw NoQuorum(reason: "the node is stopping") }
        let outcome = proposal.wait(milliseconds: settings.commitTimeoutMilliseconds)
        statistics.withLock {
            $0.proposals += 1
            if case .committed = outcome { $0.proposalMicroseconds.record(monotonicMicroseconds() - started) } else { $0.proposalsRefused += 1 }
        }
        switch outcome {
        case .committed(let ticket):
            shared.withLock { $0.committing = (ticket, payload) }
            do {
                try RegionLogRecords.setApplied(index: ticket.index, term: ticket.term, in: database)
            } catch {
                // Committed in the log all the same: it is applied from there.
                batchFinished(committed: false)
                throw error
            }
        case .refused(let reason):
            throw NoQuorum(reason: reason)
        case .accepted:
            preconditionFailure("a batch's proposal is committed or refused")
        }
    }

    /// `Writer.Settings.afterCommit`: the leader's batch is applied — or,
    /// when its local COMMIT failed, its committed entry is applied from
    /// the log instead.
    func batchFinished(committed: Bool) {
        guard let (ticket, payload) = shared.withLock({ shared -> (ProposalTicket, [UInt8])? in
            defer { shared.committing = nil }
            return shared.committing
        }) else { return }
        if committed {
            published(ticket.index)
        } else {
            submitApply([LogEntry(index: ticket.index, term: ticket.term, payload: .command(payload))])
        }
    }

    func published(_ index: UInt64, entries: Int = 1) {
        shared.withLock { $0.appliedIndex = max($0.appliedIndex, index) }
        statistics.withLock { $0.entriesApplied += entries }
    }

    /// Applies committed entries (writer thread, outside any transaction):
    /// those that follow what is applied, then any held back that follow
    /// them. An entry that arrives before its predecessor (the leader's own
    /// batch, handed back after its local COMMIT failed, behind an entry the
    /// driver queued meanwhile) waits for it.
    private func apply(_ entries: [LogEntry], in database: Database) throws {
        var next = appliedIndex + 1
        var run: [LogEntry] = []
        for entry in entries.sorted(by: { $0.index < $1.index }) where entry.index >= next {
            if entry.index == next {
                run.append(entry)
                next += 1
            } else {
                guard heldBack.count < Self.heldBackMax else { throw RegionLogFault.gap(expected: next, got: entry.index) }
                heldBack[entry.index] = entry
            }
        }
        while let held = heldBack.removeValue(forKey: next) {
            run.append(held)
            next += 1
        }
        if !run.isEmpty { try applyInOrder(run, in: database) }
    }

    /// Applies consecutive entries in one transaction (one fsync however
    /// many a Ready committed: a follower catching up applies a thousand at
    /// a time), recording the last one's index with them.
    private func applyInOrder(_ run: [LogEntry], in database: Database) throws {
        let started = monotonicMicroseconds()
        let changesets = try run.compactMap { entry -> Changeset? in
            guard case .command(let bytes) = entry.payload, !bytes.isEmpty else { return nil }
            return try RegionCommand.decode(bytes)
        }
        if !changesets.isEmpty {
            let last = run[run.count - 1]
            for changeset in changesets { try follower.prepare(changeset) }
            try database.apply(changesets) {
                try RegionLogRecords.setApplied(index: last.index, term: last.term, in: database)
                for changeset in changesets { try follower.applied(changeset, in: database) }
            }
            for changeset in changesets { try follower.finished(changeset) }
            statistics.withLock { $0.applyMicroseconds.record(monotonicMicroseconds() - started) }
        }
        published(run[run.count - 1].index, entries: run.count)
    }

    private func submitApply(_ entries: [LogEntry]) {
        guard let first = entries.first else { return }
        let accepted = writer.submitOutsideTransaction({ [self] database in try apply(entries, in: database) }) { [self] error in
            guard let error else { return }
            failApplying("entries from \(first.index) could not be applied: \(error)")
        }
        if !accepted { failApplying("the writer is closed") }
    }

    private func failApplying(_ reason: String) {
        let first = shared.withLock { shared -> Bool in
            defer { shared.applyFailure = shared.applyFailure ?? reason }
            return shared.applyFailure == nil
        }
        if first { logger.error("region log apply failed", ["reason": .string(reason)]) }
    }

    // MARK: Waiting (request tasks)

    /// Waits until this node has applied `index`, at most until `deadline`
    /// (monotonic ms). Returns whether it did.
    func waitApplied(_ index: UInt64, until deadline: Int64) async -> Bool {
        while appliedIndex < index {
            guard monotonicMilliseconds() < deadline, applyFailure == nil else { return false }
            try? await Task.sleep(nanoseconds: 1_000_000)
        }
        return true
    }

    /// Waits, at most until `deadline`, until this node is a leader that
    /// may serve. Returns false as soon as another node leads.
    func waitServingLeader(until deadline: Int64) async -> Bool {
        while !isServingLeader {
            let status = self.status
            guard monotonicMilliseconds() < deadline, status.role == .leader || status.leader == nil else { return false }
            try? await Task.sleep(nanoseconds: 1_000_000)
        }
        return true
    }

    static let readMethods: Set<String> = ["GET", "HEAD"]

    /// Hands a client's call to the leader and returns its answer — for a
    /// write, once this node has applied what the leader had applied when it
    /// answered (or, far behind, after an election timeout: what the leader
    /// applied is committed).
    ///
    /// Waits for a leader while an election runs. A call already handed to
    /// a leader is never handed to another (it may have taken effect): if
    /// that leader falls silent or is replaced, the call fails with
    /// `NoQuorum`, and the client, told to retry, decides.
    func forward(_ request: ForwardedCall.Request) async throws -> ForwardedCall.Answer {
        let electionMilliseconds = settings.tickMilliseconds * Int64(settings.electionTicks)
        let deadline = monotonicMilliseconds() + settings.commitTimeoutMilliseconds + 2 * electionMilliseconds
        let payload = ForwardedCall.encode(request)
        var leaderless = monotonicMilliseconds()
        while monotonicMilliseconds() < deadline {
            guard let leader = status.leader, leader != name, let channel else {
                // An election takes about one timeout; longer, and there is no majority to elect one.
                guard monotonicMilliseconds() - leaderless < electionMilliseconds else {
                    throw NoQuorum(reason: "no leader of the region is known")
                }
                try? await Task.sleep(nanoseconds: UInt64(settings.tickMilliseconds) * 1_000_000)
                continue
            }
            leaderless = monotonicMilliseconds()
            let reply = try await ask(leader, payload, over: channel, until: deadline)
            switch try? ForwardedCall.decodeAnswer(reply) {
            case .response(let status, let headers, let body, let leaderApplied)?:
                // A write is answered once applied here too (the leader applied it: it is committed; a
                // follower far behind answers after an election timeout at most). A read changed nothing
                // this node must show: its answer is the leader's, and so is the next call's.
                if !Self.readMethods.contains(request.method) {
                    _ = await waitApplied(leaderApplied, until: min(deadline, monotonicMilliseconds() + electionMilliseconds))
                }
                return .response(status: status, headers: headers, body: body, appliedIndex: leaderApplied)
            case .notLeader?:
                // It ran nothing: ask whoever leads next.
                try? await Task.sleep(nanoseconds: UInt64(settings.tickMilliseconds) * 1_000_000)
            case nil:
                throw NoQuorum(reason: "the region's leader answered with a malformed message")
            }
        }
        throw NoQuorum(reason: "no leader of the region answered in time")
    }

    /// Runs an internal call (`/internal/…`) on `node`, a member of the
    /// region, over the region channel: authenticated by the node keys, and
    /// addressed by the roster, not by gossip.
    func call(_ node: NodeName, _ request: ForwardedCall.Request, timeoutMilliseconds: Int64) async throws -> ForwardedCall.Answer {
        precondition(request.target.hasPrefix(RegionRouting.internalPrefix), "only internal calls go to a chosen node")
        guard let channel else { throw NoQuorum(reason: "the region channel is not running") }
        let reply = try await channel.request(ForwardedCall.encode(request), to: node, deadline: .now + .milliseconds(timeoutMilliseconds))
        return try ForwardedCall.decodeAnswer(reply)
    }

    /// Sends `payload` to `leader` and waits for its reply, giving up as soon
    /// as this node follows another leader (or none) or `deadline` passes.
    private func ask(_ leader: NodeName, _ payload: [UInt8], over channel: RegionChannel, until deadline: Int64) async throws -> [UInt8] {
        try await withThrowingTaskGroup(of: [UInt8]?.self) { group in
            group.addTask {
                try await channel.request(payload, to: leader, deadline: .now + .milliseconds(max(0, deadline - monotonicMilliseconds())))
            }
            group.addTask { [self] in
                while !Task.isCancelled, status.leader == leader, monotonicMilliseconds() < deadline {
                    try? await Task.sleep(nanoseconds: UInt64(settings.tickMilliseconds) * 1_000_000)
                }
                return nil
            }
            defer { group.cancelAll() }
            do {
                if let reply = try await group.next() ?? nil { return reply }
            } catch {}
            throw NoQuorum(reason: "the region's leader did not answer")
        }
    }

    // MARK: Inputs (any thread)

    private func received(_ bytes: [UInt8], from peer: NodeName) {
        // The channel authenticated `peer`: a message naming another sender is refused.
        guard let message = try? RaftCodec.decodeMessage(bytes), message.from == peer, message.to == name else {
            statistics.withLock { $0.messagesRefused += 1 }
            return
        }
        // A snapshot goes to the machine once its state is in node.sqlite.
        if case .snapshot = message.body { return install(message) }
        inbox.add(message: message)
    }

    // MARK: The driver (its own thread)

    private func drive() {
        while let input = inbox.take(until: nextTick) {
            let now = monotonicMilliseconds()
            while now >= nextTick {
                raft.tick()
                nextTick += settings.tickMilliseconds
            }
            if nextTick < now { nextTick = now + settings.tickMilliseconds }
            let leaderBefore = raft.leader
            for message in input.messages {
                raft.step(message)
                if message.from == raft.leader { shared.withLock { $0.status.leaderContact = now } }
            }
            if raft.leader != leaderBefore, let leader = raft.leader, leader != name {
                shared.withLock { $0.status.leaderContact = now }
            }
            observeRole()
            for proposal in input.proposals { propose(proposal) }
            for (operation, settled) in input.operations { perform(operation, settled) }
            do {
                while raft.hasReady { try handle(raft.ready()) }
            } catch {
                // raft.sqlite cannot be written: nothing more may be sent or
                // acknowledged. The node stops taking part (a restart
                // reloads what is durable).
                logger.error("region log storage failed", ["error": .string("\(error)")])
                failApplying("raft.sqlite: \(error)")
                inFlight?.finish(.refused("the region log's storage failed"))
                inFlight = nil
                // Nothing more is taken: proposals fail at once instead of waiting out their timeout.
                _ = inbox.close()
                break
            }
            observeRole()
            handOverIfUnfit()
            compactIfDue()
            publishStatus()
        }
        inFlight?.finish(.refused("the node is stopping"))
        inFlight = nil
        for proposal in inbox.drainProposals() { proposal.finish(.refused("the node is stopping")) }
    }

    private func observeRole() {
        let role = raft.role
        let (wasLeader, ledTerm) = shared.withLock { ($0.status.role == .leader, $0.status.term) }
        if role == .leader && (!wasLeader || ledTerm != raft.term) {
            // The machine appended its term's first (empty) entry on election.
            shared.withLock {
                $0.status.termStartIndex = raft.lastIndex
                $0.status.term = raft.term
            }
            logger.info("region log leader", ["term": .int(Int64(raft.term)), "last_index": .int(Int64(raft.lastIndex))])
        }
        if role != .leader, let proposal = inFlight {
            proposal.finish(.refused("this node is no longer the region's leader"))
            inFlight = nil
        }
        shared.withLock { $0.status.role = role }
    }

    /// A leader that cannot apply (its disk failed, its database diverged)
    /// hands the leadership to the voter furthest along, so the region
    /// keeps serving without it.
    private func handOverIfUnfit() {
        guard raft.role == .leader, applyFailure != nil else { return }
        let matches = raft.matchIndexes
        guard let target = raft.membership.voters.filter({ $0 != name }).max(by: { (matches[$0] ?? 0) < (matches[$1] ?? 0) }) else { return }
        try? raft.transferLeadership(to: target)
    }

    private func propose(_ proposal: Proposal) {
        // The batch ran on this database: every entry before it must be
        // applied here, or its changeset was taken on a state the others
        // do not have.
        guard !proposal.isAbandoned else { return }
        let refusal: String? = raft.role != .leader ? "this node is not the region's leader"
            : inFlight != nil ? "another proposal is in flight"
            : appliedIndex < raft.lastIndex ? "the leader is still applying earlier entries" : nil
        if let refusal {
            proposal.finish(.refused(refusal))
            return
        }
        do {
            proposal.ticket = try raft.propose(proposal.payload)
            inFlight = proposal
        } catch {
            proposal.finish(.refused("\(error)"))
        }
    }

    private func perform(_ operation: Inbox.Operation, _ settled: Proposal) {
        do {
            switch operation {
            case .change(let change):
                settled.finish(.committed(try raft.proposeMembershipChange(change)))
            case .transfer(let target):
                try raft.transferLeadership(to: target)
                settled.finish(.accepted)
            }
        } catch {
            settled.finish(.refused("\(error)"))
        }
    }

    private func handle(_ ready: Ready) throws {
        let hardState = ready.hardState.map { RaftHardState(term: $0.term, vote: $0.vote?.rawValue, commit: $0.commit) }
        let entries = ready.entries.map { RaftStoredEntry(index: $0.index, term: $0.term, payload: RaftCodec.encode($0)) }
        let boundary = ready.snapshot.map {
            RaftSnapshotMetadata(index: $0.metadata.index, term: $0.metadata.term, configuration: RaftCodec.encode($0.metadata))
        }
        if hardState != nil || !entries.isEmpty || boundary != nil {
            try storage.persist(hardState: hardState, entries: entries, snapshot: boundary)
        }
        // A snapshot the machine took in was installed into node.sqlite first (`install`).
        if let index = ready.snapshot?.metadata.index, index > 0 { published(index) }
        if let channel {
            for message in ready.messages { channel.send(RaftCodec.encode(message), to: message.to) }
        }
        submitApply(ready.committedEntries.filter(isToApply))
        raft.advance(ready)
    }

    /// Whether a committed entry is to be applied from the log: all but the
    /// waiting batch's own, which its writer commits (everything before it
    /// was applied when it was proposed, and what follows is applied after).
    private func isToApply(_ entry: LogEntry) -> Bool {
        guard let proposal = inFlight, let ticket = proposal.ticket, ticket.index == entry.index else { return true }
        inFlight = nil
        if ticket.term == entry.term { return !proposal.finish(.committed(ticket)) }
        proposal.finish(.refused("the entry was replaced by another leader's"))
        return true
    }

    /// Compacts the log once it holds `compact_entries` entries that
    /// node.sqlite has applied, keeping the last half of them: a follower
    /// a little behind (restarted, paused) still catches up from the log;
    /// one further behind gets a snapshot (an online backup of node.sqlite).
    private func compactIfDue() {
        let applied = min(raft.appliedIndex, appliedIndex, storage.hardState.commit)
        let kept = UInt64(settings.compactEntries / 2)
        guard applied >= raft.firstIndex + UInt64(settings.compactEntries) else { return }
        let through = applied - kept
        do {
            let snapshot = try raft.compact(through: through, payload: [])
            try storage.compact(through: through, configuration: RaftCodec.encode(snapshot.metadata))
        } catch {
            logger.warning("region log compaction failed", ["error": .string("\(error)")])
        }
    }

    private func publishStatus() {
        let membership = raft.membership
        let role = raft.role
        let matches = role == .leader ? raft.matchIndexes : [:]
        let term = raft.term, leader = raft.leader, commit = raft.commitIndex, last = raft.lastIndex
        shared.withLock { shared in
            shared.status.term = term
            shared.status.leader = leader
            shared.status.commitIndex = commit
            shared.status.lastIndex = last
            shared.status.voters = membership.voters.sorted()
            shared.status.learners = membership.learners.sorted()
            shared.status.matchIndexes = matches
        }
    }
}

enum RegionLogFault: Error, CustomStringConvertible {
    case gap(expected: UInt64, got: UInt64)

    var description: String {
        switch self {
        case .gap(let expected, let got): return "entry \(got) arrived to apply before entry \(expected)"
        }
    }
}

private func monotonicMicroseconds() -> Int64 {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return Int64(time.tv_sec) * 1_000_000 + Int64(time.tv_nsec) / 1_000
}
