import DomicileModel
import DomicileNet
import DomicilePrivacy
import DomicileStorage
import Foundation

/// Contracts in SQLite, stored as their canonical JSON.
enum ContractRecords {
    static func find(_ name: Name, in database: Database) throws -> EventContract? {
        guard let text = try database.fetchOne("SELECT definition FROM contracts WHERE name = ?", [name.rawValue], { $0.text(0) }) else {
            return nil
        }
        return try decode(text)
    }

    static func all(in database: Database) throws -> [NamedContract] {
        try database.fetchAll("SELECT name, definition FROM contracts ORDER BY name") { row in
            (try Name(row.text(0), what: "contract name"), try decode(row.text(1)))
        }.map { NamedContract(name: $0.0, contract: $0.1) }
    }

    /// Returns true when the contract is new.
    static func save(_ contract: NamedContract, now: Timestamp, in database: Database) throws -> Bool {
        let exists = try database.fetchOne("SELECT 1 FROM contracts WHERE name = ?", [contract.name.rawValue]) { _ in true } ?? false
        var json = JSONWriter()
        contract.write(to: &json)
        try database.execute("INSERT OR REPLACE INTO contracts (name, definition, updated_at) VALUES (?, ?, ?)",
                             [contract.name.rawValue, String(decoding: json.bytes, as: UTF8.self), now.milliseconds])
        return !exists
    }

    private static func decode(_ text: String) throws -> EventContract {
        try ContractDocument.decoder.decode(ContractDocument.self, from: Data(text.utf8)).contract()
    }
}
