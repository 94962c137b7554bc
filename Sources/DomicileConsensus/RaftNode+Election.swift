import DomicileModel

/// Terms, votes and roles.
extension RaftNode {
    /// Whether a follower heard from a leader less than an election timeout
    /// ago (its lease): it then ignores votes, so a node that was cut off
    /// cannot depose a leader that works.
    var inLease: Bool { settings.checkQuorum && leader != nil && electionElapsed < settings.electionTicks }

    /// Raft's first rule, with pre-vote and leases: a higher term makes us a
    /// follower, a lower one is stale. Returns whether to handle the message.
    mutating func acceptTerm(of message: RaftMessage) -> Bool {
        if message.term > term {
            switch message.body {
            case .preVote:
                return true  // answered without taking the term
            case .preVoteResponse where message.term == term + 1:
                return true  // counted; the term is raised by the election itself
            case .vote(_, _, let transfer) where !transfer && inLease:
                return false
            case .append, .heartbeat, .snapshot:
                becomeFollower(term: message.term, leader: message.from)
            default:
                becomeFollower(term: message.term, leader: nil)
            }
            return true
        }
        if message.term < term {
            switch message.body {
            case .append, .heartbeat:
                // An old leader (say, back from a partition) learns the term
                // and steps down; without this it would keep its lease.
                send(to: message.from, .appendResponse(index: 0, rejected: true, hint: 0))
            case .preVote:
                send(to: message.from, .preVoteResponse(granted: false))
            default:
                break
            }
            return false
        }
        return true
    }

    mutating func answerPreVote(_ message: RaftMessage, lastIndex: UInt64, lastTerm: UInt64) {
        let granted = message.term > term && !inLease && log.isUpToDate(lastIndex: lastIndex, lastTerm: lastTerm)
        // A refusal carries the asked term (counted as a refusal), or ours
        // when it is higher (the asker then learns of it).
        send(to: message.from, .preVoteResponse(granted: granted), term: max(message.term, term))
    }

    mutating func answerVote(_ message: RaftMessage, lastIndex: UInt64, lastTerm: UInt64) {
        let free = vote == message.from || (vote == nil && leader == nil)
        let granted = free && log.isUpToDate(lastIndex: lastIndex, lastTerm: lastTerm)
        if granted {
            vote = message.from
            electionElapsed = 0
        }
        send(to: message.from, .voteResponse(granted: granted))
    }

    mutating func countVote(from voter: NodeName, granted: Bool, preVote: Bool) {
        guard (preVote && role == .preCandidate) || (!preVote && role == .candidate), log.membership.voters.contains(voter) else { return }
        votes[voter] = votes[voter] ?? granted
        tallyVotes(preVote: preVote)
    }

    private mutating func tallyVotes(preVote: Bool) {
        let voters = log.membership.voters
        let granted = votes.filter { voters.contains($0.key) && $0.value }.count
        let refused = votes.filter { voters.contains($0.key) && !$0.value }.count
        if granted >= log.membership.quorum {
            if preVote { campaign(preVote: false, transfer: false) } else { becomeLeader() }
        } else if refused > voters.count - log.membership.quorum {
            becomeFollower(term: term, leader: nil)
        }
    }

    /// Starts a (pre-)election: a pre-vote asks for the next term without
    /// taking it; a real election takes it and votes for itself.
    mutating func campaign(preVote: Bool, transfer: Bool) {
        resetTimers()
        leader = nil
        progress = [:]
        reads = ReadQueue()
        transferee = nil
        votes = [id: true]
        let electionTerm: UInt64
        if preVote {
            role = .preCandidate
            electionTerm = term + 1
        } else {
            role = .candidate
            term += 1
            vote = id
            electionTerm = term
        }
        for voter in log.membership.voters.sorted() where voter != id {
            let body: RaftMessage.Body = preVote
                ? .preVote(lastIndex: log.lastIndex, lastTerm: log.lastTerm)
                : .vote(lastIndex: log.lastIndex, lastTerm: log.lastTerm, transfer: transfer)
            send(to: voter, body, term: electionTerm)
        }
        tallyVotes(preVote: preVote)
    }

    mutating func becomeFollower(term newTerm: UInt64, leader newLeader: NodeName?) {
        if newTerm != term {
            term = newTerm
            vote = nil
        }
        role = .follower
        leader = newLeader
        progress = [:]
        votes = [:]
        reads = ReadQueue()
        transferee = nil
        resetTimers()
    }

    /// A message of the current leader arrived.
    mutating func followLeader(_ sender: NodeName) {
        if role != .follower {
            becomeFollower(term: term, leader: sender)
        }
        leader = sender
        electionElapsed = 0
    }

    mutating func becomeLeader() {
        role = .leader
        leader = id
        votes = [:]
        reads = ReadQueue()
        transferee = nil
        resetTimers()
        progress = [:]
        syncProgress()
        for peer in progress.keys { progress[peer]!.recentActive = true }
        // An empty entry of the new term: committing it commits everything
        // before it (entries of older terms never commit by counting).
        appendLocal([.command([])])
        broadcastAppend()
    }

    mutating func resetTimers() {
        electionElapsed = 0
        heartbeatElapsed = 0
        resetRandomizedElectionTicks()
    }

    mutating func tickFollower() {
        electionElapsed += 1
        guard isVoter, electionElapsed >= randomizedElectionTicks else { return }
        campaign(preVote: settings.preVote, transfer: false)
    }

    mutating func tickLeader() {
        electionElapsed += 1
        heartbeatElapsed += 1
        tickTransfer()
        tickSnapshots()
        if electionElapsed >= settings.electionTicks {
            electionElapsed = 0
            if settings.checkQuorum && !quorumActive() {
                becomeFollower(term: term, leader: nil)
                return
            }
        }
        if heartbeatElapsed >= settings.heartbeatTicks {
            heartbeatElapsed = 0
            broadcastHeartbeat(readRound: 0)
        }
    }

    /// Whether a quorum of voters was heard from since the last check; clears
    /// the marks for the next one.
    private mutating func quorumActive() -> Bool {
        let voters = log.membership.voters
        var active = voters.contains(id) ? 1 : 0
        for (peer, state) in progress {
            if voters.contains(peer), state.recentActive { active += 1 }
            progress[peer]!.recentActive = false
        }
        return active >= log.membership.quorum
    }
}
