import Foundation
@testable import SnapFusionKit

/// Builds converted-folder fixtures in a temporary directory: a pipeline.json from
/// tests/golden/pipelines.json, the real tokenizer files, and an (empty) package directory
/// for every component file it names.
enum ModelFolder {
    struct Case {
        var name: String
        var expect: String
        var json: Data
    }

    static func cases() throws -> [Case] {
        let data = try Data(contentsOf: GoldenFiles.golden.appendingPathComponent("pipelines.json"))
        guard let root = try JSONSerialization.jsonObject(with: data) as? [String: Any],
              let cases = root["cases"] as? [[String: Any]] else { return [] }
        return try cases.map { item in
            Case(name: item["name"] as? String ?? "", expect: item["expect"] as? String ?? "",
                 json: try JSONSerialization.data(withJSONObject: item["pipeline"] ?? [:]))
        }
    }

    static func json(named name: String) throws -> Data {
        guard let found = try cases().first(where: { $0.name == name }) else {
            throw CocoaError(.fileReadNoSuchFile, userInfo: [NSLocalizedDescriptionKey: "no case \(name)"])
        }
        return found.json
    }

    /// A folder holding `json` as pipeline.json plus every file it names.
    static func make(json: Data) throws -> URL {
        let folder = try GoldenFiles.temporaryFolder()
        try json.write(to: folder.appendingPathComponent(PipelineDescription.fileName))
        for file in ["vocab.json", "merges.txt"] {
            try FileManager.default.copyItem(at: GoldenFiles.tokenizerDirectory.appendingPathComponent(file),
                                             to: folder.appendingPathComponent(file))
        }
        if let object = try JSONSerialization.jsonObject(with: json) as? [String: Any],
           let components = object["components"] as? [String: [String: Any]] {
            for component in components.values {
                let files = (component["chunks"] as? [String]) ?? [component["file"] as? String].compactMap { $0 }
                for file in files {
                    let package = folder.appendingPathComponent(file)
                    try FileManager.default.createDirectory(at: package, withIntermediateDirectories: true)
                    try Data("{}".utf8).write(to: package.appendingPathComponent("Manifest.json"))
                }
            }
        }
        return folder
    }
}
