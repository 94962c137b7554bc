/// The frames waiting for one peer, bounded by the channel's settings: in
/// order, with their bytes counted; the oldest fire-and-forget message can
/// be dropped and a request taken out when it ends before it is sent.
struct ChannelQueue {
    struct Item {
        let frame: ChannelFrame
        let requestID: UInt64?

        var byteCount: Int {
            switch frame {
            case .message(let bytes), .request(_, let bytes), .reply(_, let bytes): bytes.count + ChannelFrame.headerByteCount
            }
        }
    }

    private var items: [Item] = []
    /// Items before it were taken; compacted once it is half the storage.
    private var head = 0
    private(set) var byteCount = 0

    var count: Int { items.count - head }
    var isEmpty: Bool { count == 0 }

    mutating func append(_ item: Item) {
        items.append(item)
        byteCount += item.byteCount
    }

    mutating func popFirst() -> Item? {
        guard head < items.count else { return nil }
        let item = items[head]
        head += 1
        byteCount -= item.byteCount
        if head == items.count {
            items.removeAll(keepingCapacity: true)
            head = 0
        } else if head >= 64 && head * 2 >= items.count {
            items.removeFirst(head)
            head = 0
        }
        return item
    }

    /// Drops the oldest message (not a request); false when there is none.
    mutating func dropOldestMessage() -> Bool {
        guard let index = items[head...].firstIndex(where: { $0.requestID == nil }) else { return false }
        byteCount -= items.remove(at: index).byteCount
        return true
    }

    /// Takes out the request `id` if it is still waiting.
    mutating func removeRequest(_ id: UInt64) {
        guard let index = items[head...].firstIndex(where: { $0.requestID == id }) else { return }
        byteCount -= items.remove(at: index).byteCount
    }
}
