@testable import DomicileStorage
import Foundation

extension Writer {
    /// Occupies the writer thread until `release` is signalled, so that the
    /// writes queued meanwhile are taken as one batch. Returns once the
    /// thread is held; await `holder` after signalling.
    func hold() async -> (release: DispatchSemaphore, holder: Task<Void, any Error>) {
        let started = DispatchSemaphore(value: 0)
        let release = DispatchSemaphore(value: 0)
        let holder = Task { try await outsideTransaction { _ in
            started.signal()
            release.wait()
        } }
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                started.wait()
                continuation.resume()
            }
        }
        return (release, holder)
    }
}
