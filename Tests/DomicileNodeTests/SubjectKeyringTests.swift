@testable import DomicileNode
import DomicileCrypto
import DomicileModel
import DomicileStorage
import DomicileTestSupport
import Foundation
import XCTest

/// Bucket rotation at the records layer: what an erasure re-wraps, what it
/// destroys, and what a copy of the old wrapped keys still opens.
final class SubjectKeyringTests: XCTestCase {
    let directory = TemporaryDirectory("subject-keyring")
    let saved = Locked<[Keyring]>([])

    /// Keys with `bucketCount` buckets; every keyring change is recorded as if written to disk.
    func makeKeys(bucketCount: Int) throws -> (RegionKeys, Keyring) {
        var keyring = Keyring.generate(region: try RegionID("eu"), node: try NodeName("eu-1"), createdAt: 1)
        keyring.buckets = .generate(count: bucketCount, createdAt: 1)
        let saved = self.saved
        return (try RegionKeys(keyring: keyring, clock: { 2 }, random: SecureRandomSource()) { keyring in saved.withLock { $0.append(keyring) } }, keyring)
    }

    func register(_ count: Int, keys: RegionKeys, store: Store) async throws -> [(PID, Identifier)] {
        let subjects = (0..<count).map { index -> (PID, Identifier) in
            let identifier = Identifier(kind: .email, normalized: "subject\(index)@example.com")
            return (keys.pseudonymizers.current.pid(for: identifier), identifier)
        }
        try await store.write { database in
            var random = SecureRandom()
            for (pid, identifier) in subjects {
                try SubjectRecords.insert(pid: pid, identifier: identifier, keys: keys, now: Timestamp(milliseconds: 0), using: &random,
                                          in: database)
            }
        }
        return subjects
    }

    func wrappedKeys(_ store: Store) throws -> [String: [UInt8]] {
        try store.read { database in
            Dictionary(uniqueKeysWithValues: try database.fetchAll("SELECT pid, wrapped_key FROM subjects", []) { ($0.text(0), $0.blob(1)) })
        }
    }

    /// A read whose snapshot began before an erasure committed still holds a
    /// bucket-mate's key wrapped under the version the erasure retired: the
    /// version is destroyed only once that read has ended, so the mate never
    /// reads as absent because of someone else's erasure.
    func test_aReadFromBeforeTheErasure_stillOpensABucketMate_andTheVersionGoesWhenItEnds() async throws {
        let (keys, _) = try makeKeys(bucketCount: 1)
        let store = try Store(path: directory.file("node.sqlite"), migrator: NodeSchema.migrator, now: 0)
        defer { store.close() }
        let subjects = try await register(4, keys: keys, store: store)
        let (erased, mate) = (subjects[0].0, subjects[1].0)
        let started = DispatchSemaphore(value: 0)
        let proceed = DispatchSemaphore(value: 0)
        let opened = Locked<Bool?>(nil)
        let reader = Thread {
            try? store.snapshot { database in
                _ = try database.fetchOne("SELECT count(*) FROM subjects", []) { $0.int64(0) }  // the snapshot starts here
                started.signal()
                proceed.wait()
                opened.withLock { $0 = (try? SubjectRecords.key(of: mate, keys: keys, in: database)) != nil }
            }
        }
        reader.start()
        started.wait()
        try await store.write { database in
            try database.execute("DELETE FROM identities WHERE pid = ?", [erased.rawValue])
            try database.execute("DELETE FROM subjects WHERE pid = ?", [erased.rawValue])
            try keys.subjects.rotateBucket(of: erased, in: database)
        }
        let destroying = Task { try await keys.subjects.destroyRetired(store) }
        try await Task.sleep(for: .milliseconds(100))
        XCTAssertEqual(keys.subjects.buckets.versions(of: 0).map(\.version), [1, 2], "the earlier read still runs")
        proceed.signal()
        try await destroying.value
        XCTAssertEqual(opened.value, true, "the read from before the erasure opened the mate's key")
        XCTAssertEqual(keys.subjects.buckets.versions(of: 0).map(\.version), [2])
        try store.read { database in XCTAssertNotNil(try SubjectRecords.key(of: mate, keys: keys, in: database)) }
    }

    func test_erasureRotatesTheBucket_rewrapsItsOtherSubjects_andDestroysTheOldVersion() async throws {
        let (keys, _) = try makeKeys(bucketCount: 4)
        let store = try Store(path: directory.file("node.sqlite"), migrator: NodeSchema.migrator, now: 0)
        defer { store.close() }
        let subjects = try await register(24, keys: keys, store: store)
        let before = try wrappedKeys(store)
        // The erased subject is taken from the fullest bucket: 24 subjects in 4 buckets put at least 6 there.
        let byBucket = Dictionary(grouping: subjects) { keys.subjects.buckets.bucket(of: $0.0) }
        let bucket = byBucket.max { $0.value.count < $1.value.count }!.key
        let (erased, _) = byBucket[bucket]![0]
        let mates = subjects.filter { keys.subjects.buckets.bucket(of: $0.0) == bucket && $0.0 != erased }
        let others = subjects.filter { keys.subjects.buckets.bucket(of: $0.0) != bucket }
        XCTAssertGreaterThanOrEqual(mates.count, 5)

        try await store.write { database in
            try database.execute("DELETE FROM identities WHERE pid = ?", [erased.rawValue])
            try database.execute("DELETE FROM subjects WHERE pid = ?", [erased.rawValue])
            try keys.subjects.rotateBucket(of: erased, in: database)
        }
        XCTAssertEqual(keys.subjects.buckets.versions(of: bucket).map(\.version), [1, 2], "kept until the erasure committed")
        try await keys.subjects.destroyRetired(store)

        let final = try XCTUnwrap(saved.value.last)
        for buckets in [keys.subjects.buckets, final.buckets] {
            XCTAssertEqual(buckets.versions(of: bucket).map(\.version), [2])
            XCTAssertTrue(buckets.retired.isEmpty)
            for other in 0..<4 where other != bucket { XCTAssertEqual(buckets.current(UInt16(other))?.version, 1) }
        }
        // What is stored now opens, identifiers included.
        let after = try wrappedKeys(store)
        try store.read { database in
            for (pid, identifier) in subjects where pid != erased {
                let key = try XCTUnwrap(try SubjectRecords.key(of: pid, keys: keys, in: database))
                XCTAssertEqual(try SubjectRecords.identifiers(of: pid, key: key, in: database), [identifier])
            }
        }
        // What a copy taken before holds: the erased subject's key and its bucket-mates' no longer open; the other buckets' do.
        XCTAssertNil(try keys.subjects.unwrap(before[erased.rawValue]!, for: erased))
        for (pid, _) in mates {
            XCTAssertNil(try keys.subjects.unwrap(before[pid.rawValue]!, for: pid))
            XCTAssertNotEqual(before[pid.rawValue], after[pid.rawValue])
        }
        for (pid, _) in others {
            XCTAssertNotNil(try keys.subjects.unwrap(before[pid.rawValue]!, for: pid))
            XCTAssertEqual(before[pid.rawValue], after[pid.rawValue], "other buckets are not touched")
        }
    }

    /// A follower of the region log: its keyring started from the leader's
    /// buckets, and before it applies the leader's erasure (here: it reads the
    /// leader's rows), `catchUp` ratchets the rotated bucket to the version
    /// the rows name. No key travels; the follower then opens every live
    /// subject, destroys the retired version, and a copy from before the
    /// erasure no longer opens for the erased subject.
    func test_aFollowerCatchesUpToTheLeadersRotations_byRatchet_savingOnce() async throws {
        let (leader, keyring) = try makeKeys(bucketCount: 2)
        let followerSaves = Locked<[Keyring]>([])
        let follower = try RegionKeys(keyring: keyring, clock: { 3 }, random: SecureRandomSource()) { keyring in
            followerSaves.withLock { $0.append(keyring) }
        }
        let store = try Store(path: directory.file("node.sqlite"), migrator: NodeSchema.migrator, now: 0)
        defer { store.close() }
        let subjects = try await register(32, keys: leader, store: store)
        let before = try wrappedKeys(store)
        let byBucket = Dictionary(grouping: subjects) { leader.subjects.buckets.bucket(of: $0.0) }
        let erased = byBucket[0]![0].0
        let gone: [(PID, UInt16)] = [(erased, 0), (byBucket[0]![1].0, 0), (byBucket[1]![0].0, 1)]
        for (pid, bucket) in gone {
            try await store.write { database in
                try database.execute("DELETE FROM identities WHERE pid = ?", [pid.rawValue])
                try database.execute("DELETE FROM subjects WHERE pid = ?", [pid.rawValue])
                try leader.subjects.rotateBucket(of: pid, in: database)
            }
            XCTAssertEqual(leader.subjects.buckets.bucket(of: pid), bucket)
        }
        try await leader.subjects.destroyRetired(store)
        XCTAssertEqual([0, 1].map { leader.subjects.buckets.current($0)?.version }, [3, 2])

        let wrappings = try store.read { database in
            try database.fetchAll("SELECT wrap_bucket, wrap_version FROM subjects", []) {
                WrappedSubjectKey.Wrapping(bucket: UInt16($0.int64(0)), version: UInt32($0.int64(1)))
            }
        }
        XCTAssertEqual(try follower.subjects.catchUp(to: wrappings), 2)
        XCTAssertEqual(followerSaves.value.count, 1, "one durable save for the whole change")
        XCTAssertEqual(try follower.subjects.catchUp(to: wrappings + [.init(bucket: 1, version: 1)]), 0, "already there")
        XCTAssertEqual(followerSaves.value.count, 1)
        for bucket: UInt16 in [0, 1] {
            XCTAssertEqual(follower.subjects.buckets.current(bucket)?.material.bytesForSealing,
                           leader.subjects.buckets.current(bucket)?.material.bytesForSealing)
        }
        try store.read { database in
            for (pid, identifier) in subjects where !gone.contains(where: { $0.0 == pid }) {
                let key = try XCTUnwrap(try SubjectRecords.key(of: pid, keys: follower, in: database))
                XCTAssertEqual(try SubjectRecords.identifiers(of: pid, key: key, in: database), [identifier])
            }
        }
        XCTAssertNotNil(try follower.subjects.unwrap(before[erased.rawValue]!, for: erased), "version 1 is kept until destroyRetired")
        try await follower.subjects.destroyRetired(store)
        XCTAssertEqual(follower.subjects.buckets.versions(of: 0).map(\.version), [3])
        XCTAssertEqual(followerSaves.value.last?.buckets.versions(of: 0).map(\.version), [3])
        XCTAssertNil(try follower.subjects.unwrap(before[erased.rawValue]!, for: erased))
    }

    /// A node started on a database a snapshot replaced (rows wrapped under
    /// versions its keyring has not reached) catches up at start, before it
    /// serves: every subject opens.
    func test_recover_ratchetsUpToTheVersionsTheRowsUse() async throws {
        let (leader, keyring) = try makeKeys(bucketCount: 1)
        let store = try Store(path: directory.file("node.sqlite"), migrator: NodeSchema.migrator, now: 0)
        defer { store.close() }
        let subjects = try await register(6, keys: leader, store: store)
        for (pid, _) in subjects.prefix(2) {
            try await store.write { database in
                try database.execute("DELETE FROM identities WHERE pid = ?", [pid.rawValue])
                try database.execute("DELETE FROM subjects WHERE pid = ?", [pid.rawValue])
                try leader.subjects.rotateBucket(of: pid, in: database)
            }
        }
        let follower = try RegionKeys(keyring: keyring, clock: { 3 }, random: SecureRandomSource()) { _ in }
        try store.read { database in
            XCTAssertNil(try SubjectRecords.key(of: subjects[2].0, keys: follower, in: database), "version 3 is not in its keyring yet")
        }
        try await follower.subjects.recover(store)
        XCTAssertEqual(follower.subjects.buckets.versions(of: 0).map(\.version), [3], "caught up, and version 1 destroyed")
        try store.read { database in
            for (pid, identifier) in subjects.dropFirst(2) {
                let key = try XCTUnwrap(try SubjectRecords.key(of: pid, keys: follower, in: database))
                XCTAssertEqual(try SubjectRecords.identifiers(of: pid, key: key, in: database), [identifier])
            }
        }
    }

    /// A row naming a bucket the keyring does not have, or a version too far
    /// ahead to derive, is refused before the keyring changes.
    func test_catchUp_refusesAnImpossibleWrapping_changingNothing() throws {
        let (keys, _) = try makeKeys(bucketCount: 2)
        for wrapping in [WrappedSubjectKey.Wrapping(bucket: 2, version: 2),
                         WrappedSubjectKey.Wrapping(bucket: 1, version: 1 + SubjectKeyBuckets.ratchetStepsMax + 1)] {
            XCTAssertThrowsError(try keys.subjects.catchUp(to: [.init(bucket: 0, version: 2), wrapping])) { error in
                XCTAssertTrue(error is StorageError, "\(error)")
            }
        }
        XCTAssertEqual(keys.subjects.buckets.keys.map(\.version), [1, 1])
        XCTAssertTrue(saved.value.isEmpty)
    }

    func test_aRotationRolledBack_keepsTheVersionItsRowsNeed_andStartFinishesIt() async throws {
        let (keys, _) = try makeKeys(bucketCount: 2)
        let store = try Store(path: directory.file("node.sqlite"), migrator: NodeSchema.migrator, now: 0)
        defer { store.close() }
        let subjects = try await register(8, keys: keys, store: store)
        let (pid, identifier) = subjects[0]
        let bucket = keys.subjects.buckets.bucket(of: pid)
        struct Refused: Error {}
        do {
            try await store.write { database in
                try keys.subjects.rotateBucket(of: pid, in: database)
                throw Refused()
            }
            XCTFail("the write was refused")
        } catch is Refused {}
        try await keys.subjects.destroyRetired(store)
        XCTAssertEqual(keys.subjects.buckets.versions(of: bucket).map(\.version), [1, 2], "version 1 still wraps committed rows")
        try store.read { database in
            let key = try XCTUnwrap(try SubjectRecords.key(of: pid, keys: keys, in: database))
            XCTAssertEqual(try SubjectRecords.identifiers(of: pid, key: key, in: database), [identifier])
        }

        try await keys.subjects.recover(store)
        XCTAssertEqual(keys.subjects.buckets.versions(of: bucket).map(\.version), [2])
        try store.read { database in
            for (pid, identifier) in subjects {
                let key = try XCTUnwrap(try SubjectRecords.key(of: pid, keys: keys, in: database))
                XCTAssertEqual(try SubjectRecords.identifiers(of: pid, key: key, in: database), [identifier])
            }
        }
    }

    func test_keysWrappedUnderTheRegionDataKey_moveIntoBucketsAtStart() async throws {
        let (keys, keyring) = try makeKeys(bucketCount: 4)
        let store = try Store(path: directory.file("node.sqlite"), migrator: NodeSchema.migrator, now: 0)
        defer { store.close() }
        let subjects = try await register(6, keys: keys, store: store)
        // Rewrite them as a node before migration 6 stored them: under the data key, no bucket.
        let data = try keyring.keySet(.data)
        try await store.write { database in
            for (pid, identifier) in subjects {
                let secret = SecretBytes(randomCount: 32)
                let key = try AESGCMKey(version: 1, secret: secret)
                let wrapped = data.seal(secret, associatedData: SubjectKeyring.legacyAssociatedData(pid))
                try database.execute("UPDATE subjects SET wrapped_key = ?, wrap_bucket = NULL, wrap_version = NULL WHERE pid = ?",
                                     [wrapped, pid.rawValue])
                let sealed = Envelope.seal(Array(identifier.value.utf8), key: key,
                                           associatedData: SubjectRecords.identityAssociatedData(pid, identifier.kind))
                try database.execute("UPDATE identities SET sealed_value = ? WHERE pid = ?", [sealed, pid.rawValue])
            }
        }
        try await keys.subjects.recover(store)
        try store.read { database in
            XCTAssertEqual(try database.fetchOne("SELECT count(*) FROM subjects WHERE wrap_bucket IS NULL", []) { $0.int64(0) }, 0)
            for (pid, identifier) in subjects {
                let wrapped = try XCTUnwrap(try database.fetchOne("SELECT wrapped_key FROM subjects WHERE pid = ?", [pid.rawValue]) { $0.blob(0) })
                XCTAssertEqual(SubjectKeyring.wrapping(of: wrapped)?.bucket, keys.subjects.buckets.bucket(of: pid))
                let key = try XCTUnwrap(try SubjectRecords.key(of: pid, keys: keys, in: database))
                XCTAssertEqual(try SubjectRecords.identifiers(of: pid, key: key, in: database), [identifier])
            }
        }
    }

    /// The keyring is rewritten on every erasure: a full disk there is answered like a full database (507).
    func test_aKeyringWriteOnAFullDisk_isDiskFull() {
        XCTAssertTrue(StorageError.isDiskFull(FileIO.Failure.system(path: "k", operation: "write", errno: ENOSPC)))
        XCTAssertFalse(StorageError.isDiskFull(FileIO.Failure.system(path: "k", operation: "write", errno: EACCES)))
    }
}
