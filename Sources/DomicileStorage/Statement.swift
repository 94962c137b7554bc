import CSQLite

/// A prepared statement. It finalizes itself when released, and belongs to
/// the connection (and so the thread) that prepared it: not `Sendable`.
public final class Statement {
    let handle: OpaquePointer
    private let connection: OpaquePointer
    public let sql: String

    init(connection: OpaquePointer, sql: String) throws(StorageError) {
        var statement: OpaquePointer?
        let code = sqlite3_prepare_v3(connection, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &statement, nil)
        guard code == SQLITE_OK, let statement else {
            throw StorageError(resultCode: code, connection: connection, sql: sql)
        }
        self.handle = statement
        self.connection = connection
        self.sql = sql
    }

    deinit { sqlite3_finalize(handle) }

    /// Resets the statement and binds `arguments` to parameters 1…n.
    public func bind(_ arguments: [any DatabaseValueConvertible]) throws(StorageError) {
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
        let expected = Int(sqlite3_bind_parameter_count(handle))
        guard arguments.count == expected else {
            // Our bug, not the world's: the SQL and its call site disagree.
            preconditionFailure("statement expects \(expected) arguments, got \(arguments.count): \(sql)")
        }
        for (offset, argument) in arguments.enumerated() {
            try bind(argument.databaseValue, at: Int32(offset + 1))
        }
    }

    private func bind(_ value: DatabaseValue, at index: Int32) throws(StorageError) {
        let code: Int32
        switch value {
        case .null:
            code = sqlite3_bind_null(handle, index)
        case .integer(let integer):
            code = sqlite3_bind_int64(handle, index, integer)
        case .real(let real):
            code = sqlite3_bind_double(handle, index, real)
        case .text(var text):
            code = text.withUTF8 { utf8 in
                domicile_sqlite3_bind_text(handle, index, UnsafeRawPointer(utf8.baseAddress!)
                    .assumingMemoryBound(to: CChar.self), Int32(utf8.count))
            }
        case .blob(let blob):
            code = blob.withUnsafeBytes { raw in
                // A zero-length blob needs a non-NULL pointer, or SQLite binds NULL.
                domicile_sqlite3_bind_blob(handle, index, raw.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!, Int32(raw.count))
            }
        }
        guard code == SQLITE_OK else { throw StorageError(resultCode: code, connection: connection, sql: sql) }
    }

    /// Advances to the next row; false when the statement is done.
    public func step() throws(StorageError) -> Bool {
        switch sqlite3_step(handle) {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        case let code:
            sqlite3_reset(handle)
            throw StorageError(resultCode: code, connection: connection, sql: sql)
        }
    }

    /// Runs the statement to completion, discarding rows.
    public func run() throws(StorageError) {
        while try step() {}
        sqlite3_reset(handle)
    }

    public func reset() { sqlite3_reset(handle) }

    public var row: Row { Row(statement: self) }
}

/// The current row of a statement; valid until the next `step`.
public struct Row {
    let statement: Statement

    public var columnCount: Int { Int(sqlite3_column_count(statement.handle)) }

    public func isNull(_ column: Int) -> Bool {
        sqlite3_column_type(statement.handle, Int32(column)) == SQLITE_NULL
    }

    public func int64(_ column: Int) -> Int64 { sqlite3_column_int64(statement.handle, Int32(column)) }
    public func int(_ column: Int) -> Int { Int(int64(column)) }
    public func bool(_ column: Int) -> Bool { int64(column) != 0 }
    public func double(_ column: Int) -> Double { sqlite3_column_double(statement.handle, Int32(column)) }

    public func text(_ column: Int) -> String {
        guard let pointer = sqlite3_column_text(statement.handle, Int32(column)) else { return "" }
        let count = Int(sqlite3_column_bytes(statement.handle, Int32(column)))
        return String(decoding: UnsafeBufferPointer(start: pointer, count: count), as: UTF8.self)
    }

    public func optionalText(_ column: Int) -> String? { isNull(column) ? nil : text(column) }
    public func optionalInt64(_ column: Int) -> Int64? { isNull(column) ? nil : int64(column) }
    public func optionalDouble(_ column: Int) -> Double? { isNull(column) ? nil : double(column) }

    public func blob(_ column: Int) -> [UInt8] {
        let count = Int(sqlite3_column_bytes(statement.handle, Int32(column)))
        guard count > 0, let pointer = sqlite3_column_blob(statement.handle, Int32(column)) else { return [] }
        return Array(UnsafeRawBufferPointer(start: pointer, count: count))
    }

    /// Reads the blob in place, without copying it into an array.
    public func withBlob<R>(_ column: Int, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        let count = Int(sqlite3_column_bytes(statement.handle, Int32(column)))
        let pointer = sqlite3_column_blob(statement.handle, Int32(column))
        return try body(UnsafeRawBufferPointer(start: count > 0 ? pointer : nil, count: count))
    }

    public func optionalBlob(_ column: Int) -> [UInt8]? { isNull(column) ? nil : blob(column) }

    /// The name of `column` in the result (its alias if it has one).
    public func name(_ column: Int) -> String {
        sqlite3_column_name(statement.handle, Int32(column)).map { String(cString: $0) } ?? "column \(column)"
    }

    /// The text of `column` decoded by `decode` (an enum's raw value, a
    /// name). A value that does not decode is corrupt data: it throws
    /// `StorageError.corrupt`, never skipped or replaced by a default.
    public func decode<T>(_ column: Int, table: String, _ decode: (String) throws -> T?) throws(StorageError) -> T {
        try StorageError.decoded(try? decode(text(column)), table: table, column: name(column))
    }

    /// The same for a column that may be NULL (nil when it is).
    public func decodeOptional<T>(_ column: Int, table: String, _ decode: (String) throws -> T?) throws(StorageError) -> T? {
        isNull(column) ? nil : try self.decode(column, table: table, decode)
    }
}
