import Foundation
import Testing
@testable import SnapFusionKit

@Suite struct PipelineDescriptionTests {
    static let cases = (try? ModelFolder.cases().map { PipelineCase(name: $0.name, expect: $0.expect) }) ?? []

    struct PipelineCase: Sendable, CustomTestStringConvertible {
        var name: String
        var expect: String
        var testDescription: String { name }
    }

    @Test func goldenCoversValidAndInvalidSamples() {
        let expectations = Set(Self.cases.map(\.expect))
        #expect(expectations.isSuperset(of: ["ok", "unsupportedFormatVersion", "malformed", "missingComponent"]))
    }

    @Test(arguments: cases) func loadsOrRejects(item: PipelineCase) throws {
        let folder = try ModelFolder.make(json: try ModelFolder.json(named: item.name))
        do {
            let description = try PipelineDescription.load(from: folder)
            #expect(item.expect == "ok", "\(item.name) loaded but should fail with \(item.expect)")
            let padZero = item.name == "non_square_float_ids_pad0"
            let shapes = ["non_square_float_ids_pad0": [1, 4, 12, 8], "non_square_with_lora": [1, 4, 8, 12]]
            #expect(description.latentShape == (shapes[item.name] ?? [1, 4, 8, 8]))
            #expect(description.tokenizerConfiguration == CLIPTokenizer.Configuration(padTokenID: padZero ? 0 : 49407))
        } catch let error as PipelineDescriptionError {
            let kind: String
            switch error {
            case .unsupportedFormatVersion(let version, _):
                kind = "unsupportedFormatVersion"
                #expect(error.localizedDescription.contains("format_version 1, got \(version)"))
            case .malformed: kind = "malformed"
            case .missingComponent: kind = "missingComponent"
            case .missingFile: kind = "missingFile"
            case .missingPipelineFile: kind = "missingPipelineFile"
            }
            #expect(kind == item.expect, "\(item.name): \(error.localizedDescription)")
        }
    }

    @Test func validSampleDecodesEveryField() throws {
        let description = try PipelineDescription.decode(try ModelFolder.json(named: "valid"))
        #expect(description.predictionType == .vPrediction)
        #expect(description.sampler.timesteps == [999, 874, 749, 624, 499, 374, 249, 124])
        #expect(description.sampler.timestepSpacing == .trailing)
        #expect(description.guidance.unetBatch == 2)
        #expect(description.latent.scaleFactor == 0.18215)
        #expect(description.components.unet?.files == ["Unet.mlpackage"])
        #expect(description.components.textEncoder?.inputs?.first?.dtype == "float32")
        #expect(try description.timesteps(steps: 8) == description.sampler.timesteps)
        #expect(try description.timesteps(steps: 4) == [999, 749, 499, 249])
    }

    /// Folders written by 0.1 converters: a square `image_size` and int32 token ids still load.
    @Test func legacyFolderWithImageSizeAndInt32IdsDecodes() throws {
        let legacy = try PipelineDescription.decode(try ModelFolder.json(named: "legacy_image_size_int32_ids"))
        let current = try PipelineDescription.decode(try ModelFolder.json(named: "valid"))
        #expect(legacy.components.textEncoder?.inputs?.first?.dtype == "int32")
        #expect(legacy.latent.height == current.latent.height && legacy.latent.width == current.latent.width)
    }

    @Test func chunkedUnetListsBothFiles() throws {
        let description = try PipelineDescription.decode(try ModelFolder.json(named: "chunked_unet"))
        #expect(description.components.unet?.files == ["UnetChunk1.mlpackage", "UnetChunk2.mlpackage"])
    }

    @Test(arguments: ["Unet.mlpackage", "TextEncoder.mlpackage", "VAEDecoder.mlpackage", "vocab.json", "merges.txt"])
    func missingFilesAreNamed(file: String) throws {
        let folder = try ModelFolder.make(json: try ModelFolder.json(named: "valid"))
        try FileManager.default.removeItem(at: folder.appendingPathComponent(file))
        #expect {
            try PipelineDescription.load(from: folder)
        } throws: { error in
            guard case let .missingFile(name, _, path)? = error as? PipelineDescriptionError else { return false }
            return name == file && path == folder.path && error.localizedDescription.contains(file)
        }
    }

    @Test func missingSecondChunkIsNamed() throws {
        let folder = try ModelFolder.make(json: try ModelFolder.json(named: "chunked_unet"))
        try FileManager.default.removeItem(at: folder.appendingPathComponent("UnetChunk2.mlpackage"))
        #expect(throws: PipelineDescriptionError.missingFile("UnetChunk2.mlpackage", component: "unet", folder: folder.path)) {
            try PipelineDescription.load(from: folder)
        }
    }

    @Test func folderWithoutPipelineJSONIsIncomplete() throws {
        let folder = try GoldenFiles.temporaryFolder()
        #expect(throws: PipelineDescriptionError.missingPipelineFile(folder.path)) {
            try PipelineDescription.load(from: folder)
        }
    }

    @Test func textEncoderOnlyFolderServesTheTokenizer() throws {
        let folder = try ModelFolder.make(json: try ModelFolder.json(named: "text_encoder_only"))
        let description = try PipelineDescription.load(from: folder, requiring: [.textEncoder])
        #expect(description.components.unet == nil)
    }

    @Test func malformedMessagesNameTheKey() throws {
        #expect {
            try PipelineDescription.decode(try ModelFolder.json(named: "missing_sampler"))
        } throws: { error in
            (error as? PipelineDescriptionError)?.localizedDescription.contains("sampler") == true
        }
        #expect(throws: PipelineDescriptionError.self) { try PipelineDescription.decode(Data("not json".utf8)) }
    }
}
