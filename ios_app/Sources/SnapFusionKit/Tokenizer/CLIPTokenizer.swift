import Foundation

/// The CLIP BPE tokenizer of Stable Diffusion 1.x, giving exactly the ids of Hugging Face's
/// `CLIPTokenizer(vocab.json, merges.txt)(prompt, padding="max_length", max_length=77,
/// truncation=True).input_ids` (transformers 5, tokenizers backend).
///
/// Pipeline, in order (see `TextNormalizer`, `PreTokenizer`, `BytePairEncoder`):
/// 1. the special tokens `<|startoftext|>` and `<|endoftext|>` are cut out of the raw text
///    (they are not normalized, so only the exact lowercase spelling is special);
/// 2. every other segment is normalized: NFC, whitespace runs -> one space, lowercase;
/// 3. CLIP's regex split, then GPT-2's byte-level split and byte -> unicode map;
/// 4. BPE by merge rank with the "</w>" end-of-word suffix; unknown symbols become the unknown
///    token `<|endoftext|>`;
/// 5. start token + the first `maxLength - 2` tokens + end token, padded with the pad token.
///
/// ```swift
/// let tokenizer = try CLIPTokenizer(directory: modelFolder)
/// let ids = tokenizer.encode("a photo of an astronaut")  // [49406, 320, 1125, 539, 550, 18376, 49407, 49407, ...]
/// ```
public struct CLIPTokenizer: Sendable {
    /// Token ids and lengths, normally from pipeline.json's `tokenizer` section.
    public struct Configuration: Equatable, Sendable {
        public var maxLength: Int
        public var bosTokenID: Int
        public var eosTokenID: Int
        public var padTokenID: Int

        /// CLIP's context length (the text encoder's `max_position_embeddings`), for folders
        /// without pipeline.json; a converted folder's `tokenizer.max_length` is used otherwise.
        public static let clipMaxLength = 77
        /// CLIP's `<|startoftext|>` and `<|endoftext|>` ids.
        public static let clipBOS = 49406
        public static let clipEOS = 49407

        /// Creates a configuration; the defaults are SD-1.x's CLIP values.
        public init(maxLength: Int = clipMaxLength, bosTokenID: Int = clipBOS, eosTokenID: Int = clipEOS,
                    padTokenID: Int = clipEOS) {
            self.maxLength = maxLength
            self.bosTokenID = bosTokenID
            self.eosTokenID = eosTokenID
            self.padTokenID = padTokenID
        }
    }

    static let specialTokens = ["<|startoftext|>", "<|endoftext|>"]
    static let unknownToken = "<|endoftext|>"

    /// The configuration the ids are produced with.
    public let configuration: Configuration
    private let vocabulary: [String: Int]
    private let encoder: BytePairEncoder

    /// A tokenizer from an in-memory vocabulary and merge list (in rank order).
    public init(vocabulary: [String: Int], merges: [(String, String)], configuration: Configuration = .init()) {
        self.vocabulary = vocabulary
        self.encoder = BytePairEncoder(merges: merges)
        self.configuration = configuration
    }

    /// Reads `vocab.json` and `merges.txt` (or the given file names) from `directory`.
    public init(directory: URL, vocabFile: String = "vocab.json", mergesFile: String = "merges.txt",
                configuration: Configuration = .init()) throws {
        let vocabURL = directory.appendingPathComponent(vocabFile)
        let mergesURL = directory.appendingPathComponent(mergesFile)
        for url in [vocabURL, mergesURL] where !FileManager.default.fileExists(atPath: url.path) {
            throw TokenizerError.missingFile(url.path)
        }
        let vocabulary: [String: Int]
        do {
            vocabulary = try JSONDecoder().decode([String: Int].self, from: Data(contentsOf: vocabURL))
        } catch {
            throw TokenizerError.malformedVocabulary(vocabURL.path, String(describing: error))
        }
        let merges = try Self.readMerges(mergesURL)
        self.init(vocabulary: vocabulary, merges: merges, configuration: configuration)
    }

    /// Parses merges.txt: an optional "#version" header, then one "first second" pair per line.
    static func readMerges(_ url: URL) throws -> [(String, String)] {
        let text: String
        do { text = try String(contentsOf: url, encoding: .utf8) } catch {
            throw TokenizerError.malformedMerges(url.path, line: 0)
        }
        var merges: [(String, String)] = []
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.hasSuffix("\r") ? line.dropLast() : line
            if trimmed.isEmpty || (number == 0 && trimmed.hasPrefix("#version")) { continue }
            let parts = trimmed.split(separator: " ", omittingEmptySubsequences: false)
            guard parts.count == 2 else { throw TokenizerError.malformedMerges(url.path, line: number + 1) }
            merges.append((String(parts[0]), String(parts[1])))
        }
        return merges
    }

    /// The BPE tokens of `text`, without start, end or padding tokens and not truncated.
    public func tokenize(_ text: String) -> [String] {
        var tokens: [String] = []
        for segment in Self.splitSpecialTokens(text) {
            if segment.isSpecial {
                tokens.append(segment.text)
                continue
            }
            let normalized = TextNormalizer.normalize(segment.text)
            for word in PreTokenizer.words(normalized) {
                tokens += encoder.encode(ByteEncoder.encode(word))
            }
        }
        return tokens
    }

    /// Token ids of `text` without start, end or padding tokens and not truncated.
    public func tokenIDs(_ text: String) -> [Int] {
        let unknown = vocabulary[Self.unknownToken] ?? configuration.eosTokenID
        return tokenize(text).map { vocabulary[$0] ?? unknown }
    }

    /// `maxLength` ids: start token, the first `maxLength - 2` token ids, end token, padding.
    public func encode(_ text: String) -> [Int] {
        let body = tokenIDs(text).prefix(max(configuration.maxLength - 2, 0))
        var ids = [configuration.bosTokenID] + body + [configuration.eosTokenID]
        ids += [Int](repeating: configuration.padTokenID, count: max(configuration.maxLength - ids.count, 0))
        return ids
    }

    /// Splits raw text around the exact special-token strings (leftmost match first), comparing
    /// Unicode scalars as tokenizers compares bytes: a combining mark after a special token
    /// does not hide it.
    static func splitSpecialTokens(_ text: String) -> [(text: String, isSpecial: Bool)] {
        let scalars = Array(text.unicodeScalars)
        let patterns = specialTokens.map { Array($0.unicodeScalars) }
        var segments: [(String, Bool)] = []
        var start = 0
        var i = 0
        func flush(_ end: Int) {
            guard end > start else { return }
            var view = String.UnicodeScalarView()
            view.append(contentsOf: scalars[start..<end])
            segments.append((String(view), false))
        }
        while i < scalars.count {
            if let pattern = patterns.first(where: { i + $0.count <= scalars.count && scalars[i..<(i + $0.count)].elementsEqual($0) }) {
                flush(i)
                segments.append((String(String.UnicodeScalarView(pattern)), true))
                i += pattern.count
                start = i
            } else {
                i += 1
            }
        }
        flush(scalars.count)
        return segments
    }
}

/// Errors reading the tokenizer files.
public enum TokenizerError: LocalizedError, Equatable {
    case missingFile(String)
    case malformedVocabulary(String, String)
    case malformedMerges(String, line: Int)

    public var errorDescription: String? {
        switch self {
        case let .missingFile(path):
            return "tokenizer file not found: \(path)"
        case let .malformedVocabulary(path, reason):
            return "expected vocab.json to be a JSON object of token -> id, got \(reason) (in \(path))"
        case let .malformedMerges(path, line):
            return "expected merges.txt lines of two space-separated symbols, got something else at line \(line) (in \(path))"
        }
    }
}
