/// ASCII case-insensitive equality (HTTP auth schemes).
extension Substring {
    func caseInsensitiveCompare(_ other: String) -> Bool {
        utf8.count == other.utf8.count && zip(utf8, other.utf8).allSatisfy { a, b in (a | 0x20) == (b | 0x20) }
    }
}
