import CLinux
import DomicileModel
import Foundation

/// Copies WAL frames into the database file on its own thread, so the
/// writer never checkpoints inside a COMMIT.
///
/// SQLite's automatic checkpoint runs in the connection that commits, every
/// 1000 pages: the writer would stall, page copies and an fsync of the
/// database file included, while every queued write waits. The writer's
/// auto-checkpoint is therefore off; this thread runs PASSIVE checkpoints
/// (which never block the writer or readers) whenever the WAL has grown past
/// `walBytesThreshold`, and a RESTART checkpoint when it has grown past
/// `walBytesCeiling` despite them (readers pinning old frames, or writes
/// that never pause: the WAL only starts over from its beginning after a
/// checkpoint that took the write lock). Given the store's `Writer`, that
/// RESTART runs on the writer, between two transactions: from this thread
/// it would have to win the write lock from a writer that commits back to
/// back, which SQLite's busy handler (polling) does not under a sustained
/// load; the WAL then grew to gigabytes. Durability is unaffected: a commit
/// is durable once its WAL frames are fsynced.
final class Checkpointer: Sendable {
    struct Settings: Sendable {
        /// How often the WAL size is looked at.
        var intervalMilliseconds: UInt32 = 100
        /// A passive checkpoint runs when the WAL is larger than this.
        var walBytesThreshold = 4 * 1_024 * 1_024
        /// Past this, a RESTART checkpoint (it waits for readers) bounds the WAL.
        var walBytesCeiling = 256 * 1_024 * 1_024
    }

    private let stopped = DispatchSemaphore(value: 0)
    private let running: Locked<Bool>

    init(path: String, options: Database.Options, settings: Settings = Settings(), writer: Writer? = nil) throws {
        let database = try Database(path: path, options: options)
        let running = Locked(true)
        self.running = running
        let transfer = UncheckedDatabase(database: database)
        let stopped = self.stopped
        // A RESTART asked of the writer and not yet run: at most one at a time.
        let restartQueued = Locked(false)
        let thread = Thread {
            domicile_set_thread_name("db-checkpoint")
            let walPath = path + "-wal"
            while running.value {
                usleep(settings.intervalMilliseconds * 1_000)
                var info = stat()
                guard stat(walPath, &info) == 0 else { continue }
                if info.st_size > settings.walBytesCeiling, let writer {
                    // The frames copied here, so the writer's RESTART has only the last ones left to copy.
                    try? transfer.database.checkpoint(.passive)
                    guard restartQueued.withLock({ queued in defer { queued = true }; return !queued }) else { continue }
                    let submitted = writer.submitOutsideTransaction({ try $0.checkpoint(.restart) }) { _ in restartQueued.withLock { $0 = false } }
                    if !submitted { restartQueued.withLock { $0 = false } }
                } else if info.st_size > settings.walBytesCeiling {
                    try? transfer.database.checkpoint(.restart)
                } else if info.st_size > settings.walBytesThreshold {
                    try? transfer.database.checkpoint(.passive)
                }
            }
            stopped.signal()
        }
        thread.start()
    }

    func stop() {
        let wasRunning = running.withLock { running -> Bool in
            defer { running = false }
            return running
        }
        if wasRunning { stopped.wait() }
    }
}

/// The checkpointer's connection, handed to its thread once.
private struct UncheckedDatabase: @unchecked Sendable {
    let database: Database
}
