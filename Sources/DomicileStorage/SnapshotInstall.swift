import Foundation
import Glibc

extension Store {
    /// Replaces the database at `databasePath` with a received snapshot
    /// (`SnapshotChunkWriter.finish`'s file, in the same directory), durably.
    /// Every store on `databasePath` must be closed first: no connection may
    /// hold the old file or its WAL.
    ///
    /// The old file's -wal, -shm and -journal go first: SQLite would replay a
    /// WAL (or roll back a hot journal) left beside a database into whatever
    /// file then has that name, and the snapshot is not the file they belong
    /// to. The removals are made durable (directory fsync) before the rename,
    /// so a crash leaves either the old database without its side files (an
    /// older, consistent state, whose applied index says so) or the snapshot;
    /// then the snapshot is renamed over the database and the directory is
    /// fsync'd again. The snapshot is in rollback-journal mode; the node turns
    /// WAL on when it opens it.
    public static func installSnapshot(_ received: String, at databasePath: String) throws(SnapshotError) {
        for suffix in ["-wal", "-shm", "-journal"] {
            guard unlink(databasePath + suffix) == 0 || errno == ENOENT else { throw .system(operation: "unlink \(suffix)", errno: errno) }
        }
        let directory = (databasePath as NSString).deletingLastPathComponent
        try syncDirectory(directory)
        guard rename(received, databasePath) == 0 else { throw .system(operation: "rename", errno: errno) }
        try syncDirectory(directory)
    }

    private static func syncDirectory(_ path: String) throws(SnapshotError) {
        let descriptor = open(path.isEmpty ? "." : path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else { throw .system(operation: "open directory", errno: errno) }
        defer { Glibc.close(descriptor) }
        guard fsync(descriptor) == 0 else { throw .system(operation: "fsync directory", errno: errno) }
    }
}
