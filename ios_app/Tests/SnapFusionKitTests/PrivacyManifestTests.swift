import Foundation
import Testing

/// The privacy manifests (PrivacyInfo.xcprivacy of SnapFusionKit and of the sample app) declare
/// exactly the required-reason API categories their sources call: a new call without a
/// declaration, or a declaration left behind after the call went, fails here. Categories and
/// reasons: https://developer.apple.com/documentation/bundleresources/describing-use-of-required-reason-api
@Suite struct PrivacyManifestTests {
    /// Required-reason categories and the Swift spellings of their APIs this project could call.
    static let categories: [String: [String]] = [
        "NSPrivacyAccessedAPICategoryFileTimestamp": [".modificationDate", ".creationDate", "contentModificationDate",
                                                      "creationDateKey", "attributesOfItem", "fileModificationDate"],
        "NSPrivacyAccessedAPICategoryUserDefaults": ["UserDefaults"],
        "NSPrivacyAccessedAPICategorySystemBootTime": ["systemUptime", "mach_absolute_time"],
        "NSPrivacyAccessedAPICategoryDiskSpace": ["volumeAvailableCapacity", "systemFreeSize", "statfs("],
    ]

    static func declared(_ manifest: URL) throws -> [String: [String]] {
        let plist = try PropertyListSerialization.propertyList(from: Data(contentsOf: manifest), format: nil)
        let root = try #require(plist as? [String: Any])
        #expect(root["NSPrivacyTracking"] as? Bool == false)
        #expect((root["NSPrivacyCollectedDataTypes"] as? [Any])?.isEmpty == true)
        let types = try #require(root["NSPrivacyAccessedAPITypes"] as? [[String: Any]])
        var result: [String: [String]] = [:]
        for entry in types {
            result[try #require(entry["NSPrivacyAccessedAPIType"] as? String)] = entry["NSPrivacyAccessedAPITypeReasons"] as? [String]
        }
        return result
    }

    static func used(in folder: URL) throws -> Set<String> {
        var used: Set<String> = []
        let files = FileManager.default.enumerator(at: folder, includingPropertiesForKeys: nil)!
        for case let file as URL in files where file.pathExtension == "swift" {
            let code = try String(contentsOf: file, encoding: .utf8).split(separator: "\n")
                .filter { !$0.trimmingCharacters(in: .whitespaces).hasPrefix("//") }.joined(separator: "\n")
            for (category, apis) in categories where apis.contains(where: code.contains) { used.insert(category) }
        }
        return used
    }

    @Test(arguments: [("ios_app/Sources/SnapFusionKit", ["NSPrivacyAccessedAPICategoryFileTimestamp": ["C617.1"]]),
                      ("ios_app/App/SnapFusionApp.swiftpm/Sources", ["NSPrivacyAccessedAPICategoryUserDefaults": ["CA92.1"]])])
    func manifestDeclaresWhatTheSourcesUse(folder: String, expected: [String: [String]]) throws {
        let sources = GoldenFiles.repositoryRoot.appendingPathComponent(folder)
        let declared = try Self.declared(sources.appendingPathComponent("PrivacyInfo.xcprivacy"))
        #expect(Set(declared.keys) == (try Self.used(in: sources)))
        #expect(declared == expected)
    }
}
