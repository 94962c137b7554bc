import DomicileModel

/// Access-anomaly detection: a principal touching more distinct subjects in
/// one minute than `distinctSubjectsPerMinute` is flagged once for that
/// minute. Windows are fixed calendar minutes; memory per principal is
/// bounded by the limit (counting stops once it is crossed).
final class AccessMonitor: Sendable {
    private struct Window {
        var minute: Int64
        var subjects: Set<String> = []
        var flagged = false
    }

    let distinctSubjectsPerMinute: Int
    private let windows = Locked<[String: Window]>([:])

    init(distinctSubjectsPerMinute: Int) { self.distinctSubjectsPerMinute = distinctSubjectsPerMinute }

    /// Records that `principal` touched `pid`. Returns the number of distinct
    /// subjects when this touch is the one that crosses the limit.
    func touch(_ principal: String, pid: String, now: Timestamp) -> Int? {
        let minute = now.milliseconds / 60_000
        let limit = distinctSubjectsPerMinute
        return windows.withLock { windows -> Int? in
            var window = windows[principal].flatMap { $0.minute == minute ? $0 : nil } ?? Window(minute: minute)
            defer { windows[principal] = window }
            guard !window.flagged else { return nil }
            window.subjects.insert(pid)
            guard window.subjects.count > limit else { return nil }
            window.flagged = true
            let count = window.subjects.count
            window.subjects = []
            return count
        }
    }
}
