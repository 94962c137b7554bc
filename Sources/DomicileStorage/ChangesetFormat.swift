/// Checks that bytes are framed as a changeset or patchset (SQLite's
/// sessions format, docs/FORMATS.md) before SQLite reads them, and lists
/// the tables they change. SQLite
/// 3.40.1 trusts the framing: a table header cut before its name's NUL
/// makes `sqlite3changeset_next` loop forever. So every table header and
/// value must end within the bytes, and each change's records hold the
/// values its operation needs, before SQLite sees them.
///
/// Layout: a run of table headers, each followed by its changes.
///   header  'T' (changeset) or 'P' (patchset), varint column count,
///           one byte per column (its position in the primary key from 1,
///           0 if not part of it),
///           the table's name, NUL-terminated.
///   change  operation (INSERT 18, UPDATE 23, DELETE 9), indirect flag (0/1),
///           then records: INSERT new; DELETE old (a patchset: its primary
///           key only); UPDATE old and new (a patchset: new only). Records
///           of an INSERT or DELETE define every value; an UPDATE's old
///           record defines the primary key, its new record (a patchset's:
///           the primary key and) the changed columns, at least one.
///   value   type byte: 0 undefined, 1 integer (8 bytes), 2 real (8 bytes),
///           3 text or 4 blob (varint length, bytes), 5 NULL.
struct ChangesetFormat {
    private let bytes: UnsafeRawBufferPointer
    private var offset = 0

    /// A table header: the table's name and, for each column, its
    /// position in the primary key from 1 (0 if not part of it).
    struct Table: Hashable {
        let name: String
        let primaryKey: [Int]
    }

    /// The table headers of `bytes`, or `ChangesetError.malformed` unless
    /// it is a well-framed changeset or patchset (not both kinds of header).
    static func tables(in bytes: UnsafeRawBufferPointer) throws(ChangesetError) -> Set<Table> {
        var format = ChangesetFormat(bytes: bytes)
        return try format.readAll()
    }

    private init(bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    private mutating func readAll() throws(ChangesetError) -> Set<Table> {
        var tables: Set<Table> = []
        var table: (primaryKey: [Bool], isPatchset: Bool)?
        var kind: UInt8?
        while offset < bytes.count {
            let marker = try byte()
            switch marker {
            case UInt8(ascii: "T"), UInt8(ascii: "P"):
                guard kind == nil || kind == marker else { throw .malformed }
                kind = marker
                let header = try header()
                tables.insert(header)
                table = (header.primaryKey.map { $0 > 0 }, marker == UInt8(ascii: "P"))
            case 18, 23, 9:
                guard let table else { throw .malformed }
                try change(operation: marker, primaryKey: table.primaryKey, isPatchset: table.isPatchset)
            default:
                throw .malformed
            }
        }
        return tables
    }

    private mutating func header() throws(ChangesetError) -> Table {
        let columns = try varint()
        guard (1...65_536).contains(columns) else { throw .malformed }
        var primaryKey: [Int] = []
        primaryKey.reserveCapacity(columns)
        for _ in 0..<columns { primaryKey.append(Int(try byte())) }
        guard primaryKey.contains(where: { $0 > 0 }) else { throw .malformed }
        let nameStart = offset
        while try byte() != 0 {}
        guard offset - 1 > nameStart else { throw .malformed }
        let name = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[nameStart..<(offset - 1)]), as: UTF8.self)
        return Table(name: name, primaryKey: primaryKey)
    }

    private mutating func change(operation: UInt8, primaryKey: [Bool], isPatchset: Bool) throws(ChangesetError) {
        guard try byte() <= 1 else { throw .malformed }
        switch (operation, isPatchset) {
        case (18, _), (9, false):
            guard try record(count: primaryKey.count).allSatisfy({ $0 }) else { throw .malformed }
        case (9, true):
            guard try record(count: primaryKey.filter { $0 }.count).allSatisfy({ $0 }) else { throw .malformed }
        case (23, false):
            // The old record holds the primary key; the new one only the
            // columns that change (SQLite fails on a primary key there).
            let old = try record(count: primaryKey.count)
            let new = try record(count: primaryKey.count)
            try checkUpdate(primaryKey: primaryKey, keyedRecord: old, changedRecord: new, keyInChanged: false)
        default:
            let new = try record(count: primaryKey.count)
            try checkUpdate(primaryKey: primaryKey, keyedRecord: new, changedRecord: new, keyInChanged: true)
        }
    }

    /// An update names its row by the whole primary key and changes at
    /// least one other column.
    private func checkUpdate(primaryKey: [Bool], keyedRecord: [Bool], changedRecord: [Bool],
                             keyInChanged: Bool) throws(ChangesetError) {
        var changes = false
        for column in primaryKey.indices {
            if primaryKey[column] {
                guard keyedRecord[column], keyInChanged || !changedRecord[column] else { throw .malformed }
            } else if changedRecord[column] {
                changes = true
            }
        }
        guard changes else { throw .malformed }
    }

    /// Reads `count` values; for each, whether it is defined.
    private mutating func record(count: Int) throws(ChangesetError) -> [Bool] {
        var defined: [Bool] = []
        defined.reserveCapacity(count)
        for _ in 0..<count {
            let type = try byte()
            switch type {
            case 0: break
            case 1, 2: try skip(8)
            case 3, 4: try skip(try varint())
            case 5: break
            default: throw .malformed
            }
            defined.append(type != 0)
        }
        return defined
    }

    private mutating func byte() throws(ChangesetError) -> UInt8 {
        guard offset < bytes.count else { throw .malformed }
        defer { offset += 1 }
        return bytes[offset]
    }

    private mutating func skip(_ count: Int) throws(ChangesetError) {
        guard count >= 0, count <= bytes.count - offset else { throw .malformed }
        offset += count
    }

    /// SQLite's varint (big-endian groups of 7 bits, the high bit set on all
    /// but the last; a ninth byte carries 8 bits), limited to Int32.
    private mutating func varint() throws(ChangesetError) -> Int {
        var value: UInt64 = 0
        for index in 0..<9 {
            let next = try byte()
            if index == 8 {
                value = value << 8 | UInt64(next)
                break
            }
            value = value << 7 | UInt64(next & 0x7F)
            if next & 0x80 == 0 { break }
        }
        guard value <= UInt64(Int32.max) else { throw .malformed }
        return Int(value)
    }
}
