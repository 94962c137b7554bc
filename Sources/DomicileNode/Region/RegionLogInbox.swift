import DomicileConsensus
import DomicileModel
import DomicileNet
import Foundation

extension RegionLog {
    /// One writer batch waiting for its entry: proposed by the driver, then
    /// committed (the writer commits the batch) or refused (it rolls back).
    final class Proposal: @unchecked Sendable {
        enum Outcome: Sendable {
            case committed(ProposalTicket)
            /// An operation the machine took that has no entry (a transfer).
            case accepted
            case refused(String)
        }

        let payload: [UInt8]
        /// Set by the driver once the machine took it (driver thread only).
        var ticket: ProposalTicket?
        // Guarded by `condition`.
        private let condition = NSCondition()
        private var outcome: Outcome?
        private var abandoned = false

        init(payload: [UInt8]) { self.payload = payload }

        /// Settles the proposal. Returns false, changing nothing, when the
        /// writer already gave up on it (then a committed entry must be
        /// applied from the log) or it was settled before.
        @discardableResult
        func finish(_ result: Outcome) -> Bool {
            condition.lock()
            defer { condition.unlock() }
            guard outcome == nil, !abandoned else { return false }
            outcome = result
            condition.signal()
            return true
        }

        /// The writer gave up waiting: the driver does not propose it.
        var isAbandoned: Bool {
            condition.lock()
            defer { condition.unlock() }
            return abandoned
        }

        /// Waits for the outcome for at most `milliseconds`; past that the
        /// proposal is abandoned and refused.
        func wait(milliseconds: Int64) -> Outcome {
            let deadline = Date(timeIntervalSinceNow: Double(milliseconds) / 1_000)
            condition.lock()
            defer { condition.unlock() }
            while outcome == nil {
                if !condition.wait(until: deadline) && outcome == nil {
                    abandoned = true
                    return .refused("the entry was not committed within \(milliseconds) ms")
                }
            }
            return outcome!
        }
    }

    /// What the driver thread has to do: peers' messages and proposals,
    /// guarded by a condition it sleeps on until the next tick.
    final class Inbox: @unchecked Sendable {
        struct Input {
            var messages: [RaftMessage] = []
            var proposals: [Proposal] = []
            /// Operators' requests: a membership change or a leadership
            /// transfer, each settled when the machine took or refused it.
            var operations: [(Operation, Proposal)] = []
        }

        enum Operation {
            case change(MembershipChange)
            case transfer(to: NodeName)
        }

        // Guarded by `condition`.
        private let condition = NSCondition()
        private var pending = Input()
        private var closed = false
        /// Peers' messages waiting at most; beyond, new ones are dropped
        /// (Raft tolerates a lossy network).
        private static let messagesMax = 16_384

        func add(message: RaftMessage) {
            condition.lock()
            defer { condition.unlock() }
            guard !closed, pending.messages.count < Self.messagesMax else { return }
            pending.messages.append(message)
            condition.signal()
        }

        /// False when closed.
        func add(proposal: Proposal) -> Bool {
            condition.lock()
            defer { condition.unlock() }
            guard !closed else { return false }
            pending.proposals.append(proposal)
            condition.signal()
            return true
        }

        /// False when closed.
        func add(operation: Operation, settled proposal: Proposal) -> Bool {
            condition.lock()
            defer { condition.unlock() }
            guard !closed else { return false }
            pending.operations.append((operation, proposal))
            condition.signal()
            return true
        }

        /// What arrived, once something did or `deadline` (monotonic ms)
        /// passed; nil once closed.
        func take(until deadline: Int64) -> Input? {
            condition.lock()
            defer { condition.unlock() }
            while !closed && pending.messages.isEmpty && pending.proposals.isEmpty && pending.operations.isEmpty {
                let wait = deadline - monotonicMilliseconds()
                if wait <= 0 { break }
                _ = condition.wait(until: Date(timeIntervalSinceNow: Double(wait) / 1_000))
            }
            if closed { return nil }
            defer { pending = Input() }
            return pending
        }

        func drainProposals() -> [Proposal] {
            condition.lock()
            defer { condition.unlock() }
            defer { pending = Input() }
            return pending.proposals + pending.operations.map(\.1)
        }

        /// Returns false if already closed.
        func close() -> Bool {
            condition.lock()
            defer { condition.unlock() }
            guard !closed else { return false }
            closed = true
            condition.broadcast()
            return true
        }
    }
}
