import Foundation
import Testing
@testable import SnapFusionKit

/// format_version 3 (docs/contracts.md: optional `components.encoder` and `sizes`) on
/// hand-written samples built from the golden `valid` folder.
@Suite struct PipelineDescriptionV3Tests {
    static var encoder: [String: Any] { [
        "file": "VAEEncoder.mlpackage", "sha256": String(repeating: "4", count: 64), "precision": "float16",
        "deployment_target": "iOS18", "attention": "split_einsum",
        "inputs": [["name": "z", "shape": [1, 3, 64, 64], "dtype": "float32"]],
        "outputs": [["name": "latent", "shape": [1, 8, 8, 8], "dtype": "float32"]],
    ] }
    static var sizes: [[String: Any]] { [
        ["function": "image_64x64", "image": ["height": 64, "width": 64], "latent": ["height": 8, "width": 8]],
        ["function": "image_64x96", "image": ["height": 64, "width": 96], "latent": ["height": 8, "width": 12]],
    ] }

    /// The `valid` sample as format 3, changed by `edit`.
    static func json(_ edit: (inout [String: Any]) -> Void = { _ in }) throws -> Data {
        var object = try #require(try JSONSerialization.jsonObject(with: try ModelFolder.json(named: "valid")) as? [String: Any])
        object["format_version"] = 3
        var sampler = try #require(object["sampler"] as? [String: Any])
        sampler["previous_timesteps"] = [874, 749, 624, 499, 374, 249, 124, -1]
        object["sampler"] = sampler
        var components = try #require(object["components"] as? [String: Any])
        components["encoder"] = encoder
        object["components"] = components
        object["sizes"] = sizes
        edit(&object)
        return try JSONSerialization.data(withJSONObject: object)
    }

    @Test func readsEncoderAndSizes() throws {
        let description = try PipelineDescription.decode(try Self.json())
        #expect(description.formatVersion == 3 && PipelineDescription.supportedFormatVersions == [1, 2, 3])
        let encoder = try #require(description.component(.encoder))
        #expect(encoder.files == ["VAEEncoder.mlpackage"] && encoder.input("z")?.shape == [1, 3, 64, 64])
        #expect(encoder.outputs.first?.shape == [1, 8, 8, 8])
        #expect(description.sizes?.map(\.function) == ["image_64x64", "image_64x96"])
        #expect(description.availableSizes.map(\.label) == ["64x64", "64x96"])
        #expect(try description.size(height: 64, width: 96).latent == .init(height: 8, width: 12))
        #expect(try description.function(latentHeight: 8, width: 12) == "image_64x96")
        #expect(try description.function(imageHeight: 64, width: 64) == "image_64x64")
        #expect(throws: PipelineError.unsupportedImageSize(height: 96, width: 96, available: ["64x64", "64x96"])) {
            try description.function(latentHeight: 12, width: 12)
        }
    }

    /// Both keys are optional: null or absent `sizes` is one size (function `main`, which
    /// backends never name), no encoder is text-to-image only.
    @Test(arguments: [true, false]) func withoutEncoderAndSizes(null: Bool) throws {
        let description = try PipelineDescription.decode(try Self.json { object in
            var components = object["components"] as! [String: Any]
            components["encoder"] = null ? NSNull() : nil
            object["components"] = components
            object["sizes"] = null ? NSNull() : nil
        })
        #expect(description.components.encoder == nil && description.sizes == nil)
        #expect(description.availableSizes == [.init(function: "main", image: .init(height: 64, width: 64), latent: .init(height: 8, width: 8))])
        #expect(try description.function(latentHeight: 8, width: 8) == nil)
        #expect(try description.function(imageHeight: 64, width: 64) == nil)
    }

    @Test(arguments: [
        ("empty", "expected sizes as a non-empty list (null for one size), got []"),
        ("duplicate_function", "expected sizes[1].function as a distinct non-empty name, got \"image_64x64\""),
        ("empty_function", "expected sizes[0].function as a distinct non-empty name, got \"\""),
        ("duplicate_size", "expected sizes[1].image as a size listed once, got 64x64 again"),
        ("default_not_first", "expected sizes[0] (the default) equal to the top-level image 64x64 and latent 8x8, got image 64x96"),
        ("zero_latent", "expected sizes[1].latent.width >= 1, got 0"),
        ("missing_latent", "missing key \"sizes.1.latent\""),
        ("encoder_float64", "expected components.encoder.inputs[0].dtype as float32 or float16 or int32, got float64"),
        ("encoder_outside_folder", "expected components.encoder as a file name inside the folder"),
        ("encoder_without_file", "expected components.encoder with a file or chunks, got neither"),
    ])
    func malformedValuesNameTheKey(kind: String, message: String) throws {
        let data = try Self.json { object in
            var sizes = Self.sizes
            var encoder = Self.encoder
            switch kind {
            case "empty": sizes = []
            case "duplicate_function": sizes[1]["function"] = "image_64x64"
            case "empty_function": sizes[0]["function"] = ""
            case "duplicate_size": sizes[1] = sizes[0].merging(["function": "other"]) { $1 }
            case "default_not_first": sizes.reverse()
            case "zero_latent": sizes[1]["latent"] = ["height": 8, "width": 0]
            case "missing_latent": sizes[1]["latent"] = nil
            case "encoder_float64": encoder["inputs"] = [["name": "z", "shape": [1, 3, 64, 64], "dtype": "float64"]]
            case "encoder_outside_folder": encoder["file"] = "../VAEEncoder.mlpackage"
            default: encoder["file"] = NSNull()
            }
            object["sizes"] = sizes
            var components = object["components"] as! [String: Any]
            components["encoder"] = encoder
            object["components"] = components
        }
        #expect {
            try PipelineDescription.decode(data, source: "OUT/pipeline.json")
        } throws: { error in
            let text = (error as? PipelineDescriptionError)?.localizedDescription ?? ""
            return text.hasPrefix("malformed pipeline.json: \(message)") && text.hasSuffix("(in OUT/pipeline.json)")
        }
    }

    @Test func formatVersion4IsRefused() throws {
        let data = try Self.json { $0["format_version"] = 4 }
        #expect(throws: PipelineDescriptionError.unsupportedFormatVersion(4, "pipeline.json")) { try PipelineDescription.decode(data) }
    }

    /// A folder opens without an encoder; a listed encoder must have its files.
    @Test func folderChecksAListedEncodersFiles() throws {
        let folder = try ModelFolder.make(json: try Self.json())
        #expect(try ConvertedFolder(url: folder).description.components.encoder != nil)
        #expect(try ConvertedFolder(url: folder).modelURLs(.encoder).map(\.lastPathComponent) == ["VAEEncoder.mlpackage"])
        try FileManager.default.removeItem(at: folder.appendingPathComponent("VAEEncoder.mlpackage"))
        #expect(throws: PipelineDescriptionError.missingFile("VAEEncoder.mlpackage", component: "encoder", folder: folder.path)) {
            try ConvertedFolder(url: folder)
        }
        let textOnly = try ModelFolder.make(json: try Self.json { object in
            var components = object["components"] as! [String: Any]
            components["encoder"] = nil
            object["components"] = components
        })
        #expect(try ConvertedFolder(url: textOnly).description.components.encoder == nil)
        #expect(throws: PipelineDescriptionError.self) { try ConvertedFolder(url: textOnly, requiring: [.encoder]) }
    }
}
