import Foundation
import Testing
@testable import SnapFusionKit

/// A converted folder's format (pipeline.json component `format`) picks the backend; a Core AI
/// folder is refused by the Core ML path with one clear message.
@Suite struct FolderFormatTests {
    /// The golden "valid" sample with every component's `format` set to `format` (nil: removed).
    static func folder(format: String?, unetFormat: String? = nil) throws -> ConvertedFolder {
        var object = try #require(try JSONSerialization.jsonObject(with: ModelFolder.json(named: "valid")) as? [String: Any])
        var components = try #require(object["components"] as? [String: [String: Any]])
        for (key, var component) in components {
            let value = key == "unet" ? (unetFormat ?? format) : format
            if let value {
                component["format"] = value
                if value == "coreai", let file = component["file"] as? String {
                    component["file"] = file.replacingOccurrences(of: ".mlpackage", with: ".aimodel")
                }
            } else {
                component.removeValue(forKey: "format")
            }
            components[key] = component
        }
        object["components"] = components
        let url = try ModelFolder.make(json: try JSONSerialization.data(withJSONObject: object))
        return try ConvertedFolder(url: url)
    }

    @Test func olderFoldersAreCoreML() throws {
        #expect(try Self.folder(format: nil).format() == .coreML)
        #expect(try Self.folder(format: "coreml").format() == .coreML)
    }

    @Test func coreAIFolderIsRecognizedAndRefusedByTheCoreMLPath() throws {
        let folder = try Self.folder(format: "coreai")
        #expect(try folder.format() == .coreAI)
        #expect(folder.description.components.unet?.files == ["Unet.aimodel"])
        do {
            try folder.requireFormat(.coreML)
            Issue.record("a Core AI folder passed the Core ML format check")
        } catch let error as FolderFormatError {
            #expect(error == .needsCoreAI(folder: folder.url.path))
            #expect(error.localizedDescription.contains("Core AI folders need iOS/macOS 27 and the Core AI backend"))
        }
        let coreML = try Self.folder(format: "coreml")
        #expect(throws: FolderFormatError.needsCoreML(folder: coreML.url.path)) { try coreML.requireFormat(.coreAI) }
    }

    @Test func mixedOrUnknownFormatsAreRefused() throws {
        let mixed = try Self.folder(format: "coreml", unetFormat: "coreai")
        #expect(throws: FolderFormatError.self) { try mixed.format() }
        let unknown = try Self.folder(format: "onnx")
        #expect(throws: FolderFormatError.unsupported("onnx", folder: unknown.url.path)) { try unknown.format() }
    }
}
