/// CLIP's pre-tokenization, as in Hugging Face tokenizers:
///
/// 1. `Split(Regex(<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+), Removed, invert)`:
///    the matches are kept, everything between them (whitespace) is dropped.
/// 2. `ByteLevel(add_prefix_space: false, use_regex: true)`: GPT-2's regex
///    `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+` on every piece.
///
/// Both regexes are leftmost-first alternations over four character classes, so they are
/// implemented as scanners over Unicode scalars; `\p{L}` and `\p{N}` are the general categories
/// L* and N*, `\s` the White_Space property.
enum PreTokenizer {
    enum CharacterClass: Equatable {
        case whitespace, letter, number, other
    }

    static func characterClass(_ scalar: Unicode.Scalar) -> CharacterClass {
        if scalar.properties.isWhitespace { return .whitespace }
        switch scalar.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
            return .letter
        case .decimalNumber, .letterNumber, .otherNumber:
            return .number
        default:
            return .other
        }
    }

    static let specialPatterns: [[Unicode.Scalar]] = ["<|startoftext|>", "<|endoftext|>"].map { Array($0.unicodeScalars) }
    static let contractions: [[Unicode.Scalar]] = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d"].map { Array($0.unicodeScalars) }

    /// The words of normalized text: CLIP's split, then GPT-2's split of every piece.
    static func words(_ text: [Unicode.Scalar]) -> [String] {
        clipSplit(text).flatMap(gpt2Split)
    }

    /// Step 1: CLIP's regex; whitespace between matches is removed.
    static func clipSplit(_ s: [Unicode.Scalar]) -> [ArraySlice<Unicode.Scalar>] {
        var pieces: [ArraySlice<Unicode.Scalar>] = []
        var i = 0
        while i < s.count {
            let cls = characterClass(s[i])
            if cls == .whitespace {
                i += 1
                continue
            }
            let end: Int
            if let length = matchPrefix(specialPatterns, in: s, at: i) ?? matchPrefix(contractions, in: s, at: i) {
                end = i + length
            } else {
                switch cls {
                case .letter: end = runEnd(s, from: i) { $0 == .letter }
                case .number: end = i + 1  // [\p{N}]: one digit per piece
                default: end = runEnd(s, from: i) { $0 == .other }
                }
            }
            pieces.append(s[i..<end])
            i = end
        }
        return pieces
    }

    /// Step 2: GPT-2's regex on a piece of step 1. Pieces never contain whitespace, so the
    /// optional leading space and the two whitespace alternatives never apply.
    static func gpt2Split(_ s: ArraySlice<Unicode.Scalar>) -> [String] {
        let scalars = Array(s)
        var words: [String] = []
        var i = 0
        while i < scalars.count {
            let end: Int
            if let length = matchPrefix(contractions, in: scalars, at: i) {
                end = i + length
            } else {
                let cls = characterClass(scalars[i])
                end = runEnd(scalars, from: i) { $0 == cls }
            }
            var word = String.UnicodeScalarView()
            word.append(contentsOf: scalars[i..<end])
            words.append(String(word))
            i = end
        }
        return words
    }

    /// Length of the first pattern (in order) that `s` has at `i`, if any.
    private static func matchPrefix(_ patterns: [[Unicode.Scalar]], in s: [Unicode.Scalar], at i: Int) -> Int? {
        for pattern in patterns where i + pattern.count <= s.count {
            if s[i..<(i + pattern.count)].elementsEqual(pattern) { return pattern.count }
        }
        return nil
    }

    private static func runEnd(_ s: [Unicode.Scalar], from i: Int, _ inRun: (CharacterClass) -> Bool) -> Int {
        var end = i + 1
        while end < s.count, inRun(characterClass(s[end])) { end += 1 }
        return end
    }
}
