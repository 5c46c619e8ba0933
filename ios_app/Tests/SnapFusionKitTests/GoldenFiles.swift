import Foundation

/// Locates the repository's golden vectors (tests/golden, written by tests/golden/make_golden.py)
/// and tokenizer files relative to this source file.
enum GoldenFiles {
    /// The repository root (ios_app/..).
    static let repositoryRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()  // SnapFusionKitTests
        .deletingLastPathComponent()  // Tests
        .deletingLastPathComponent()  // ios_app
        .deletingLastPathComponent()

    static let golden = repositoryRoot.appendingPathComponent("tests/golden")
    static let tokenizerDirectory = repositoryRoot.appendingPathComponent("models/tokenizer")

    /// Decodes tests/golden/`name` with snake_case keys.
    static func load<T: Decodable>(_ type: T.Type, _ name: String) throws -> T {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try decoder.decode(T.self, from: Data(contentsOf: golden.appendingPathComponent(name)))
    }

    /// A fresh empty temporary folder.
    static func temporaryFolder() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("snapfusion-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}
