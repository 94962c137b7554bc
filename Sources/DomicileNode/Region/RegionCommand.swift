import DomicileStorage

/// An entry's command: a batch's changeset (docs/FORMATS.md, "Region log
/// entry payload"). The leader's empty entry at the start of its term has
/// no command.
enum RegionCommand {
    static let changesetKind: UInt8 = 1

    static func encode(_ changeset: Changeset) -> [UInt8] { [changesetKind] + changeset.bytes }

    static func decode(_ bytes: [UInt8]) throws(ChangesetError) -> Changeset {
        guard bytes.first == changesetKind else { throw .malformed }
        return Changeset(bytes: Array(bytes.dropFirst()))
    }
}
