/// GPT-2's reversible byte -> unicode map, used by byte-level BPE (Hugging Face `ByteLevel`).
///
/// Printable Latin-1 bytes map to themselves; the other 68 bytes map to U+0100 onwards, in
/// byte order, so every UTF-8 byte becomes one visible character (the space becomes "Ġ").
enum ByteEncoder {
    /// `table[byte]` is the character standing for that byte.
    static let table: [Character] = {
        var printable = Array(UInt32(0x21)...UInt32(0x7E))
        printable += Array(UInt32(0xA1)...UInt32(0xAC))
        printable += Array(UInt32(0xAE)...UInt32(0xFF))
        var map = [UInt32](repeating: 0, count: 256)
        var next: UInt32 = 256
        let kept = Set(printable)
        for byte in UInt32(0)..<256 {
            if kept.contains(byte) {
                map[Int(byte)] = byte
            } else {
                map[Int(byte)] = next
                next += 1
            }
        }
        return map.map { Character(Unicode.Scalar($0)!) }
    }()

    /// The byte-level string of `text`: one character per UTF-8 byte.
    static func encode(_ text: String) -> [String] {
        text.utf8.map { String(table[Int($0)]) }
    }
}
