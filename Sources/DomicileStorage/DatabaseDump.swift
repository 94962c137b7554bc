import Foundation

extension Database {
    /// Every row of every table (SQLite's own excepted) as text: one line
    /// per row, `table|quote(column 1)|quote(column 2)…`, tables by name and
    /// rows by primary key (all columns for a table without one). Two
    /// databases with the same dump hold the same values, blobs and types
    /// included. Hidden rowids are left out: a changeset carries a table's
    /// rowid only when it is the primary key (INTEGER PRIMARY KEY).
    /// For tests and consistency checks: it reads the whole database.
    public func contentDump() throws -> [String] {
        let tables = try fetchAll("""
            SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name
            """) { $0.text(0) }
        var lines: [String] = []
        for table in tables {
            let columns = try fetchAll("SELECT name, pk FROM pragma_table_info(?) ORDER BY cid", [table]) {
                (name: Self.quotedIdentifier($0.text(0)), primaryKeyPosition: $0.int(1))
            }
            let primaryKey = columns.filter { $0.primaryKeyPosition > 0 }.sorted { $0.primaryKeyPosition < $1.primaryKeyPosition }
            let order = (primaryKey.isEmpty ? columns : primaryKey).map(\.name).joined(separator: ", ")
            let values = columns.map { "quote(\($0.name))" }.joined(separator: " || '|' || ")
            try forEach("SELECT \(values) FROM \(Self.quotedIdentifier(table)) ORDER BY \(order)") {
                lines.append("\(table)|\($0.text(0))")
            }
        }
        return lines
    }

    static func quotedIdentifier(_ name: String) -> String {
        "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}
