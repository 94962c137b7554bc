@testable import DomicileStorage
import DomicileTestSupport
import Foundation
import XCTest

/// The writer's `diskFull` flag (which `/readyz` reports) is set by a write
/// the disk refused and cleared only when the disk takes a write again: a
/// commit that writes pages, in a batch where no request was refused for a
/// full disk. SQLite's `max_page_count` stands in for a full file system: a
/// write that needs a page beyond it fails with SQLITE_FULL, as on a full disk.
final class WriterDiskFullTests: XCTestCase {
    let directory = TemporaryDirectory()

    /// A store with one row, whose writer connection can grow the database
    /// by no page: updates in place still fit, a large insert does not.
    private func makeFullStore() async throws -> Store {
        let store = try Store(path: directory.file("full.sqlite"), migrator: WriterTests.schema, now: 0)
        try await store.write { try $0.execute("INSERT INTO rows (id, value) VALUES (1, 'first')") }
        try await store.writer.outsideTransaction { database in
            let pages = try database.fetchOne("PRAGMA page_count") { $0.int(0) } ?? 0
            _ = try database.fetchOne("PRAGMA max_page_count = \(pages)") { $0.int(0) }
        }
        return store
    }

    private static let large = String(repeating: "x", count: 100_000)

    private static func insertLarge(_ database: Database) throws {
        try database.execute("INSERT INTO rows (value) VALUES (?)", [large])
    }

    private static func updateInPlace(_ database: Database) throws {
        try database.execute("UPDATE rows SET value = 'second' WHERE id = 1")
    }

    private func assertRefusedForFullDisk(_ store: Store, file: StaticString = #filePath, line: UInt = #line) async {
        await XCTAssertThrowsErrorAsync(try await store.write { try WriterDiskFullTests.insertLarge($0) }, file: file, line: line) {
            XCTAssertTrue(StorageError.isDiskFull($0), "\($0)", file: file, line: line)
        }
        XCTAssertTrue(store.writer.currentStatistics.diskFull, file: file, line: line)
    }

    func test_commitsThatWriteNothing_leaveDiskFullSet() async throws {
        let store = try await makeFullStore()
        defer { store.close() }
        await assertRefusedForFullDisk(store)

        // The retention sweeper's idle pass: a transaction that changes nothing.
        try await store.write { _ in }
        try await store.write { try $0.execute("DELETE FROM rows WHERE id = 999") }
        XCTAssertTrue(store.writer.currentStatistics.diskFull, "a commit that wrote nothing cleared disk_full")

        // A write the disk takes clears it.
        try await store.write { try WriterDiskFullTests.updateInPlace($0) }
        XCTAssertFalse(store.writer.currentStatistics.diskFull)
    }

    func test_aWriteInTheBatchOfOneTheDiskRefused_leavesDiskFullSet() async throws {
        let store = try await makeFullStore()
        defer { store.close() }

        // Hold the writer thread so the next two writes are taken as one batch.
        let (release, holder) = await store.writer.hold()
        let refused = Task { try await store.write { try WriterDiskFullTests.insertLarge($0) } }
        while store.writer.queuedRequests < 1 { try await Task.sleep(nanoseconds: 1_000_000) }
        let fitting = Task { try await store.write { try WriterDiskFullTests.updateInPlace($0) } }
        while store.writer.queuedRequests < 2 { try await Task.sleep(nanoseconds: 1_000_000) }
        release.signal()
        try await holder.value

        await XCTAssertThrowsErrorAsync(try await refused.value) { XCTAssertTrue(StorageError.isDiskFull($0), "\($0)") }
        try await fitting.value
        XCTAssertEqual(try store.read { try $0.fetchOne("SELECT value FROM rows WHERE id = 1") { $0.text(0) } }, "second")
        XCTAssertTrue(store.writer.currentStatistics.diskFull, "a write that fit beside a refused one cleared disk_full")

        // Alone, the same kind of write is the disk taking writes again.
        try await store.write { try $0.execute("UPDATE rows SET value = 'third' WHERE id = 1") }
        XCTAssertFalse(store.writer.currentStatistics.diskFull)
    }

    func test_pagesWritten_changesWithACommitThatWrites_notWithAnEmptyOne() throws {
        let database = try Database(path: directory.file("pages.sqlite"))
        _ = try WriterTests.schema.migrate(database, appliedAt: 0)
        let before = database.pagesWritten
        try database.transaction {}
        XCTAssertEqual(database.pagesWritten, before)
        try database.transaction { try database.execute("INSERT INTO rows (value) VALUES ('x')") }
        XCTAssertNotEqual(database.pagesWritten, before)
    }
}
