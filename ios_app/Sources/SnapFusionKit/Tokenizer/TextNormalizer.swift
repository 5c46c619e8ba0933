import Foundation

/// The CLIP normalizer of Hugging Face tokenizers (`CLIPTokenizer`, tokenizers backend):
/// `Sequence[NFC, Replace(Regex("\s+") -> " "), Lowercase]`.
///
/// - `\s` is Oniguruma's Unicode whitespace, i.e. the White_Space property (U+0085, U+00A0,
///   U+3000 fold to a space; U+200B and U+001C do not).
/// - Lowercase maps every scalar on its own (full mapping, no final-sigma context, like the
///   Rust implementation): "ΟΔΟΣ" -> "οδοσ", "İ" -> "i̇".
/// - Nothing is stripped: leading and trailing whitespace become one space each, which the
///   pre-tokenizer then drops.
enum TextNormalizer {
    static func normalize(_ text: String) -> [Unicode.Scalar] {
        let composed = text.precomposedStringWithCanonicalMapping
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(composed.unicodeScalars.count)
        var inWhitespace = false
        for scalar in composed.unicodeScalars {
            if scalar.properties.isWhitespace {
                if !inWhitespace { out.append(" ") }
                inWhitespace = true
                continue
            }
            inWhitespace = false
            let lower = scalar.properties.lowercaseMapping
            if lower.unicodeScalars.count == 1, lower.unicodeScalars.first == scalar {
                out.append(scalar)
            } else {
                out.append(contentsOf: lower.unicodeScalars)
            }
        }
        return out
    }
}
