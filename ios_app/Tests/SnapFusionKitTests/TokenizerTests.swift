import Foundation
import Testing
@testable import SnapFusionKit

struct TokenizerGolden: Decodable {
    struct Case: Decodable, Sendable, CustomTestStringConvertible {
        var testDescription: String { prompt.debugDescription }
        var prompt: String
        var ids: [Int]
    }
    var maxLength: Int
    var cases: [Case]
}

@Suite struct TokenizerTests {
    static let tokenizer = Result { try CLIPTokenizer(directory: GoldenFiles.tokenizerDirectory) }
    static let golden = Result { try GoldenFiles.load(TokenizerGolden.self, "tokenizer.json") }

    @Test func goldenFileCoversEveryCase() throws {
        let golden = try Self.golden.get()
        #expect(golden.maxLength == 77)
        #expect(golden.cases.count >= 20)
        #expect(golden.cases.contains { $0.prompt.isEmpty })
        #expect(golden.cases.contains { $0.ids[$0.ids.count - 2] != 49407 }, "some prompt must be truncated")
    }

    /// Loaded once for the parameterized test; `goldenFileCoversEveryCase` fails if it is empty.
    static let cases = (try? golden.get().cases) ?? []

    @Test(arguments: cases) func matchesHuggingFace(item: TokenizerGolden.Case) throws {
        let ids = try Self.tokenizer.get().encode(item.prompt)
        #expect(ids == item.ids, "prompt \(item.prompt.debugDescription)")
    }

    @Test func astronautExample() throws {
        let ids = try Self.tokenizer.get().encode("a photo of an astronaut")
        #expect(Array(ids.prefix(7)) == [49406, 320, 1125, 539, 550, 18376, 49407])
        #expect(ids.count == 77)
        #expect(ids.dropFirst(7).allSatisfy { $0 == 49407 })
    }

    @Test func truncationKeepsStartAndEnd() throws {
        let ids = try Self.tokenizer.get().encode(String(repeating: "cat ", count: 200))
        #expect(ids.count == 77)
        #expect(ids.first == 49406 && ids.last == 49407)
        #expect(ids.dropFirst().dropLast().allSatisfy { $0 != 49407 })
    }

    @Test(arguments: [
        ("it's", ["it", "'s"]),
        ("o'clock", ["o", "'", "clock"]),
        ("a1b22", ["a", "1", "b", "2", "2"]),
        ("  x,  y!? ", ["x", ",", "y", "!?"]),
        ("<|endoftext|>", ["<|", "endoftext", "|>"]),
    ])
    func preTokenizerPieces(text: String, expected: [String]) {
        #expect(PreTokenizer.words(TextNormalizer.normalize(text)) == expected)
    }

    @Test func normalizerFoldsWhitespaceAndLowercasesPerScalar() {
        let out = TextNormalizer.normalize("A\u{00A0}\u{3000}B ΟΔΟΣ Cafe\u{301}\u{200B}")
        #expect(String(String.UnicodeScalarView(out)) == "a b οδοσ café\u{200B}")
    }

    @Test func byteEncoderIsABijectionOntoPrintableCharacters() {
        #expect(Set(ByteEncoder.table).count == 256)
        #expect(ByteEncoder.table[Int(UInt8(ascii: " "))] == "Ġ")
        #expect(ByteEncoder.table[Int(UInt8(ascii: "a"))] == "a")
    }

    @Test func missingFilesAreNamed() throws {
        let folder = try GoldenFiles.temporaryFolder()
        #expect(throws: TokenizerError.missingFile(folder.appendingPathComponent("vocab.json").path)) {
            try CLIPTokenizer(directory: folder)
        }
    }

    @Test func malformedMergesNameTheLine() throws {
        let folder = try GoldenFiles.temporaryFolder()
        try Data("{\"a\": 0}".utf8).write(to: folder.appendingPathComponent("vocab.json"))
        try Data("#version: 0.2\na b\nc d e\n".utf8).write(to: folder.appendingPathComponent("merges.txt"))
        #expect(throws: TokenizerError.malformedMerges(folder.appendingPathComponent("merges.txt").path, line: 3)) {
            try CLIPTokenizer(directory: folder)
        }
    }
}
