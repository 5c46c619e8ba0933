/// Byte-pair encoding by merge rank with an end-of-word suffix (Hugging Face `BPE` model with
/// `end_of_word_suffix: "</w>"`, no dropout, no continuing-subword prefix).
///
/// A word starts as its characters, the last one carrying "</w>"; the adjacent pair with the
/// lowest merge rank is merged everywhere, left to right, until no pair has a rank. This gives
/// the same result as tokenizers' priority queue, since a merge can never recreate its own pair.
struct BytePairEncoder {
    static let endOfWord = "</w>"

    /// Rank of each merge, keyed by "first second" (symbols never contain a space).
    let ranks: [String: Int]

    init(merges: [(String, String)]) {
        var ranks: [String: Int] = [:]
        ranks.reserveCapacity(merges.count)
        for (rank, pair) in merges.enumerated() where ranks["\(pair.0) \(pair.1)"] == nil {
            ranks["\(pair.0) \(pair.1)"] = rank
        }
        self.ranks = ranks
    }

    /// The BPE symbols of one byte-level word (characters as produced by `ByteEncoder`).
    func encode(_ characters: [String]) -> [String] {
        guard !characters.isEmpty else { return [] }
        var symbols = characters
        symbols[symbols.count - 1] += Self.endOfWord
        while symbols.count > 1 {
            var best: (rank: Int, first: String, second: String)?
            for i in 0..<(symbols.count - 1) {
                if let rank = ranks["\(symbols[i]) \(symbols[i + 1])"], rank < best?.rank ?? Int.max {
                    best = (rank, symbols[i], symbols[i + 1])
                }
            }
            guard let (_, first, second) = best else { break }
            var merged: [String] = []
            merged.reserveCapacity(symbols.count)
            var i = 0
            while i < symbols.count {
                if i + 1 < symbols.count, symbols[i] == first, symbols[i + 1] == second {
                    merged.append(first + second)
                    i += 2
                } else {
                    merged.append(symbols[i])
                    i += 1
                }
            }
            symbols = merged
        }
        return symbols
    }
}
