import CSQLite

extension Changeset {
    /// For each row this changeset changes in `table`, the values of
    /// `columns` (0-based) as the row stands after the change: the new row
    /// of an INSERT, the old row of a DELETE; of an UPDATE the new value of
    /// a column that changed, else its old one, which a changeset holds for
    /// primary-key columns only (nil otherwise). What a follower uses to
    /// learn what an entry touched — which subjects, which key versions — so
    /// it can bring its in-memory state and keyring to what it applies.
    ///
    /// The bytes are checked first (`ChangesetFormat`), since SQLite's
    /// iterator trusts the framing.
    public func rows(in table: String, columns: [Int]) throws -> [[DatabaseValue?]] {
        guard !isEmpty else { return [] }
        let tables = try bytes.withUnsafeBytes { bytes throws(ChangesetError) in try ChangesetFormat.tables(in: bytes) }
        guard let shape = tables.first(where: { $0.name == table }), columns.allSatisfy({ $0 >= 0 && $0 < shape.primaryKey.count }) else {
            return []
        }
        var rows: [[DatabaseValue?]] = []
        try bytes.withUnsafeBytes { raw in
            var iterator: OpaquePointer?
            guard sqlite3changeset_start(&iterator, Int32(raw.count), UnsafeMutableRawPointer(mutating: raw.baseAddress)) == SQLITE_OK,
                  let iterator else { throw ChangesetError.malformed }
            defer { sqlite3changeset_finalize(iterator) }
            while true {
                let step = sqlite3changeset_next(iterator)
                if step == SQLITE_DONE { break }
                guard step == SQLITE_ROW else { throw ChangesetError.malformed }
                var name: UnsafePointer<CChar>?
                var count: Int32 = 0
                var operation: Int32 = 0
                var indirect: Int32 = 0
                guard sqlite3changeset_op(iterator, &name, &count, &operation, &indirect) == SQLITE_OK,
                      let name, String(cString: name) == table else { continue }
                rows.append(columns.map { column in
                    var value: OpaquePointer?
                    if operation != SQLITE_DELETE { _ = sqlite3changeset_new(iterator, Int32(column), &value) }
                    if value == nil, operation != SQLITE_INSERT { _ = sqlite3changeset_old(iterator, Int32(column), &value) }
                    return value.map(Self.databaseValue)
                })
            }
        }
        return rows
    }

    /// The text values of one column over `rows(in:columns:)`.
    public func textValues(ofColumn column: Int, in table: String) throws -> [String] {
        try rows(in: table, columns: [column]).compactMap { row in
            if case .text(let text)? = row[0] { return text }
            return nil
        }
    }

    private static func databaseValue(_ value: OpaquePointer) -> DatabaseValue {
        switch sqlite3_value_type(value) {
        case SQLITE_INTEGER: return .integer(sqlite3_value_int64(value))
        case SQLITE_FLOAT: return .real(sqlite3_value_double(value))
        case SQLITE_TEXT: return .text(sqlite3_value_text(value).map { String(cString: $0) } ?? "")
        case SQLITE_BLOB:
            let count = Int(sqlite3_value_bytes(value))
            guard count > 0, let bytes = sqlite3_value_blob(value) else { return .blob([]) }
            return .blob(Array(UnsafeRawBufferPointer(start: bytes, count: count)))
        default: return .null
        }
    }
}
