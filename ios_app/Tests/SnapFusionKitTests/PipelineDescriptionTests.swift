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
        #expect(expectations.isSuperset(of: ["ok", "unsupportedFormatVersion", "malformed", "missingComponent", "unsupportedSampler"]))
        let v2 = Set(Self.cases.filter { $0.name.hasPrefix("v2_") && $0.expect == "ok" }.map { $0.name })
        #expect(SamplerName.allCases.allSatisfy { v2.contains("v2_\($0.rawValue)") })
    }

    @Test(arguments: cases) func loadsOrRejects(item: PipelineCase) throws {
        let folder = try ModelFolder.make(json: try ModelFolder.json(named: item.name))
        do {
            let description = try ConvertedFolder(url: folder).description
            #expect(item.expect == "ok", "\(item.name) loaded but should fail with \(item.expect)")
            let padZero = item.name == "non_square_float_ids_pad0"
            let shapes = ["non_square_float_ids_pad0": [1, 4, 12, 8], "non_square_with_lora": [1, 4, 8, 12],
                          "v3_non_square_default_size": [1, 4, 12, 8]]
            #expect(description.latentShape == (shapes[item.name] ?? [1, 4, 8, 8]))
            #expect(description.tokenizerConfiguration == CLIPTokenizer.Configuration(padTokenID: padZero ? 0 : 49407))
            // format_version 3 cases (encoder, sizes) that make_golden.py adds land here too: the
            // default size is the top-level one and every listed size resolves to itself.
            #expect(description.availableSizes.first?.image == .init(height: description.imageHeight, width: description.imageWidth))
            for size in description.availableSizes {
                #expect(try description.size(height: size.image.height, width: size.image.width) == size)
            }
        } catch let error as PipelineDescriptionError {
            let kind: String
            switch error {
            case .unsupportedFormatVersion(let version, _):
                kind = "unsupportedFormatVersion"
                #expect(error.localizedDescription.contains("format_version 1 or 2 or 3, got \(version)"))
            case .malformed: kind = "malformed"
            case .unsupportedSampler(let name, _):
                kind = "unsupportedSampler"
                #expect(error.localizedDescription.contains("\"\(name)\"") && error.localizedDescription.contains(SamplerName.supportedList))
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
        #expect(description.components.textEncoder?.inputs.first?.dtype == "float32")
        #expect(try description.timesteps(steps: 8) == description.sampler.timesteps)
        #expect(try description.timesteps(steps: 4) == [999, 749, 499, 249])
    }

    /// Folders written by 0.1 converters: a square `image_size` and int32 token ids still load.
    @Test func legacyFolderWithImageSizeAndInt32IdsDecodes() throws {
        let legacy = try PipelineDescription.decode(try ModelFolder.json(named: "legacy_image_size_int32_ids"))
        let current = try PipelineDescription.decode(try ModelFolder.json(named: "valid"))
        #expect(legacy.components.textEncoder?.inputs.first?.dtype == "int32")
        #expect(legacy.latent.height == current.latent.height && legacy.latent.width == current.latent.width)
    }

    /// Older folders without `source.loras` or `tokenizer.pad_token_id` read as no LoRA and the
    /// eos id, as snapfusion_coreml/contracts/pipeline_json.py reads them.
    @Test func olderFormsReadAsPythonReadsThem() throws {
        let older = try PipelineDescription.decode(try ModelFolder.json(named: "legacy_no_loras_no_pad_id"))
        #expect(older.source?.loras == nil && older.tokenizer.padTokenId == older.tokenizer.eosTokenId)
        #expect(older.imageHeight == 64 && older.imageWidth == 64)
        let lora = try PipelineDescription.decode(try ModelFolder.json(named: "non_square_with_lora"))
        #expect(lora.source?.loras == [.init(file: "style.safetensors", sha256: String(repeating: "4", count: 64), scale: 0.8,
                                              path: "/loras/style.safetensors")])
    }

    @Test(arguments: ["negative_latent_height", "latent_width_as_text", "unet_batch_3", "timesteps_increasing",
                      "unet_without_inputs", "input_ids_float64", "latent_scale_factor_zero", "beta_end_one",
                      "beta_start_negative", "unet_file_outside_folder", "vocab_outside_folder"])
    func malformedValuesNameTheKey(name: String) throws {
        let keys = ["negative_latent_height": "latent.height", "latent_width_as_text": "latent.width",
                    "unet_batch_3": "guidance.unet_batch", "timesteps_increasing": "sampler.timesteps",
                    "unet_without_inputs": "inputs", "input_ids_float64": "components.text_encoder.inputs[0].dtype",
                    "latent_scale_factor_zero": "latent.scale_factor as a number > 0",
                    "beta_end_one": "noise_schedule.beta_end as a number in (0, 1)",
                    "beta_start_negative": "noise_schedule.beta_start as a number in (0, 1)",
                    "unet_file_outside_folder": "components.unet as a file name inside the folder",
                    "vocab_outside_folder": "tokenizer.vocab as a file name inside the folder"]
        #expect {
            try PipelineDescription.decode(try ModelFolder.json(named: name), source: "OUT/pipeline.json")
        } throws: { error in
            let text = (error as? PipelineDescriptionError)?.localizedDescription ?? ""
            return text.contains(keys[name]!) && text.hasSuffix("(in OUT/pipeline.json)")
        }
    }

    /// Every valid format_version 2 sample selects its sampler and builds it over its own lists.
    @Test(arguments: cases.filter { $0.name.hasPrefix("v2_") && $0.expect == "ok" })
    func formatVersion2SamplesBuildTheirSampler(item: PipelineCase) throws {
        let description = try PipelineDescription.decode(try ModelFolder.json(named: item.name))
        #expect(description.formatVersion == 2)
        let name = try #require(description.samplerName)
        #expect(item.name.hasPrefix("v2_\(name.rawValue)"))
        let sampler = try description.makeSampler(steps: description.sampler.defaultSteps)
        #expect(sampler.unetTimesteps == description.sampler.timesteps)
        #expect(sampler.initNoiseSigma == (description.sampler.initNoiseSigma ?? 1))
        let expectedType: Any.Type = switch name {
        case .ddim: DDIMSampler.self
        case .pndm: PNDMSampler.self
        case .dpmSolverPlusPlus: DPMSolverMultistepSampler.self
        case .euler, .eulerAncestral: EulerSampler.self
        case .lcm: LCMSampler.self
        case .tcd: TCDSampler.self
        }
        #expect(type(of: sampler) == expectedType)
        if let euler = sampler as? EulerSampler {
            #expect(euler.ancestral == (name == .eulerAncestral))
        }
    }

    @Test func formatVersion2RecordsDecodeEveryListAndTheEmbedding() throws {
        let pndm = try PipelineDescription.decode(try ModelFolder.json(named: "v2_pndm")).sampler
        #expect(pndm.timesteps == [751, 501, 501, 251, 1] && pndm.currentTimesteps == [751, 751, 501, 251, 1])
        #expect(pndm.previousTimesteps == [501, 501, 251, 1, -1] && pndm.finalAlphaCumprod == 0.99915)
        let dpm = try PipelineDescription.decode(try ModelFolder.json(named: "v2_dpmsolver++")).sampler
        #expect(dpm.sigmas?.count == 9 && dpm.sigmas?.last == 0 && dpm.solverOrder == 2 && dpm.solverType == "midpoint")
        #expect(dpm.lowerOrderFinal == true && dpm.eulerAtFinal == false && dpm.finalSigmasType == "zero")
        let euler = try PipelineDescription.decode(try ModelFolder.json(named: "v2_euler")).sampler
        #expect(euler.scaleModelInput == true && euler.initNoiseSigma == 14.614646911621094 && euler.sigmas == [14.614647, 0])
        let lcm = try PipelineDescription.decode(try ModelFolder.json(named: "v2_lcm_guidance_embedding"))
        #expect(lcm.sampler.originalInferenceSteps == 50 && lcm.sampler.timestepScaling == 10)
        #expect(lcm.guidance.embedding == .init(input: "timestep_cond", dim: 256) && lcm.guidance.unetBatch == 1)
        #expect(try PipelineDescription.decode(try ModelFolder.json(named: "v2_lcm")).guidance.embedding == nil)
        let tcd = try PipelineDescription.decode(try ModelFolder.json(named: "v2_tcd")).sampler
        #expect(tcd.eta == 0.3 && tcd.previousTimesteps?.last == 0)
    }

    @Test(arguments: ["v2_sigmas_one_short", "v2_dpmsolver_without_sigmas", "v2_ddim_previous_one_short",
                      "v2_pndm_without_current", "v2_empty_timesteps", "v2_embedding_other_input", "v2_tcd_fractional_timestep"])
    func malformedSamplerRecordsNameTheKey(name: String) throws {
        let keys = ["v2_sigmas_one_short": "sampler.sigmas", "v2_dpmsolver_without_sigmas": "sampler.sigmas",
                    "v2_ddim_previous_one_short": "sampler.previous_timesteps",
                    "v2_pndm_without_current": "sampler.current_timesteps", "v2_empty_timesteps": "sampler.timesteps",
                    "v2_embedding_other_input": "guidance.embedding.input", "v2_tcd_fractional_timestep": "sampler.timesteps"]
        #expect {
            try PipelineDescription.decode(try ModelFolder.json(named: name), source: "OUT/pipeline.json")
        } throws: { error in
            let text = (error as? PipelineDescriptionError)?.localizedDescription ?? ""
            return text.contains("expected \(keys[name]!)") && text.hasSuffix("(in OUT/pipeline.json)")
        }
    }

    @Test func unknownSamplerNamesItAndTheSupportedOnes() throws {
        #expect(throws: PipelineDescriptionError.unsupportedSampler("heun", "OUT/pipeline.json")) {
            try PipelineDescription.decode(try ModelFolder.json(named: "v2_unknown_sampler"), source: "OUT/pipeline.json")
        }
        let message = PipelineDescriptionError.unsupportedSampler("heun", "OUT/pipeline.json").localizedDescription
        #expect(message == "malformed pipeline.json: expected sampler.name as one of ddim, pndm, dpmsolver++, euler, "
                + "euler_ancestral, lcm, tcd, got \"heun\" (in OUT/pipeline.json)")
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
            try ConvertedFolder(url: folder).description
        } throws: { error in
            guard case let .missingFile(name, _, path)? = error as? PipelineDescriptionError else { return false }
            return name == file && path == folder.path && error.localizedDescription.contains(file)
        }
    }

    @Test func missingSecondChunkIsNamed() throws {
        let folder = try ModelFolder.make(json: try ModelFolder.json(named: "chunked_unet"))
        try FileManager.default.removeItem(at: folder.appendingPathComponent("UnetChunk2.mlpackage"))
        #expect(throws: PipelineDescriptionError.missingFile("UnetChunk2.mlpackage", component: "unet", folder: folder.path)) {
            try ConvertedFolder(url: folder).description
        }
    }

    @Test func folderWithoutPipelineJSONIsIncomplete() throws {
        let folder = try GoldenFiles.temporaryFolder()
        #expect(throws: PipelineDescriptionError.missingPipelineFile(folder.path)) {
            try ConvertedFolder(url: folder).description
        }
    }

    @Test func textEncoderOnlyFolderServesTheTokenizer() throws {
        let folder = try ModelFolder.make(json: try ModelFolder.json(named: "text_encoder_only"))
        let description = try ConvertedFolder(url: folder, requiring: [.textEncoder]).description
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
