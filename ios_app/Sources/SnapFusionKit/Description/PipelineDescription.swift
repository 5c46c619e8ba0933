import Foundation

/// pipeline.json, format_version 1 (docs/contracts.md section 2): everything the app needs to run
/// a converted folder and nothing it must guess. Unknown keys are ignored. The Python twin is
/// snapfusion_coreml/pipeline_json.py (`PipelineManifest`); both read tests/golden/pipelines.json.
///
/// ```swift
/// let folder = try ConvertedFolder(url: url)          // reads and checks pipeline.json once
/// let sampler = try folder.description.makeSampler(steps: folder.description.sampler.defaultSteps)
/// ```
public struct PipelineDescription: Codable, Equatable, Sendable {
    /// The only format this reader understands.
    public static let supportedFormatVersion = 1
    /// The file name inside a converted folder.
    public static let fileName = ResourceNames.pipeline
    /// Pixels per latent cell along each side (the VAE's downsampling): image = 8 x latent.
    public static let vaeFactor = 8

    public var formatVersion: Int
    public var tool: Tool
    public var source: Source?
    public var predictionType: PredictionType
    /// Output image size in pixels (`"image": {"height": H, "width": W}`); nil in folders written
    /// before non-square images, which have `image_size` instead. Use `imageHeight`/`imageWidth`.
    public var image: ImageSize?
    /// Output image side of square-only folders (the older `image_size` key).
    public var imageSize: Int?
    public var latent: Latent
    public var noiseSchedule: NoiseScheduleDescription
    public var sampler: Sampler
    public var guidance: Guidance
    public var tokenizer: Tokenizer
    public var components: Components

    /// Image height and width in pixels.
    public struct ImageSize: Codable, Equatable, Sendable {
        public var height: Int
        public var width: Int
    }

    /// The converter that wrote the folder.
    public struct Tool: Codable, Equatable, Sendable {
        public var name: String
        public var version: String
    }

    /// The model the folder was converted from.
    public struct Source: Codable, Equatable, Sendable {
        public var model: String?
        public var unetLayout: String?
        public var unetParameters: Int?
        /// A single-file checkpoint's architecture (`sd-v1`, `sd-v2`, ...); nil otherwise.
        public var base: String?
        /// LoRAs merged into the weights, in the order applied; folders without the key: none.
        public var loras: [LoraRecord]?
    }

    /// One LoRA merged into the weights before palettization.
    public struct LoraRecord: Codable, Equatable, Sendable {
        public var file: String
        public var sha256: String?
        public var scale: Double
        public var path: String?
    }

    /// Latent shape and the VAE scale factor (the decoder takes `latents / scaleFactor`).
    public struct Latent: Codable, Equatable, Sendable {
        public var channels: Int
        public var height: Int
        public var width: Int
        public var scaleFactor: Double
    }

    /// The training noise schedule.
    public struct NoiseScheduleDescription: Codable, Equatable, Sendable {
        public var numTrainTimesteps: Int
        public var betaStart: Double
        public var betaEnd: Double
        public var betaSchedule: BetaSchedule
    }

    /// Sampler settings; `timesteps` is authoritative for `defaultSteps`.
    public struct Sampler: Codable, Equatable, Sendable {
        public var name: String
        public var eta: Double
        public var timestepSpacing: TimestepSpacing
        public var stepsOffset: Int
        public var defaultSteps: Int
        public var timesteps: [Int]
        public var finalAlphaCumprod: Double
    }

    /// Classifier-free guidance defaults and how the UNet runs it.
    public struct Guidance: Codable, Equatable, Sendable {
        public var defaultScale: Double
        /// 2: one call with `[uncond, cond]`; 1: two calls.
        public var unetBatch: Int
    }

    /// Tokenizer files and ids.
    public struct Tokenizer: Codable, Equatable, Sendable {
        public var vocab: String
        public var merges: String
        /// The text encoder's context length (CLIP: 77): every prompt is padded to it.
        public var maxLength: Int
        public var bosTokenId: Int
        public var eosTokenId: Int
        /// The model's own pad id (SD-2.x: 0); folders written before the key pad with `eosTokenId`.
        public var padTokenId: Int
    }

    /// The converted components; the pipeline needs all three.
    public struct Components: Codable, Equatable, Sendable {
        public var textEncoder: Component?
        public var unet: Component?
        public var decoder: Component?
    }

    /// One converted Core ML package.
    public struct Component: Codable, Equatable, Sendable {
        /// The package; null when the component is chunked.
        public var file: String?
        public var sha256: String
        public var precision: String?
        public var deploymentTarget: String?
        public var attention: String?
        /// "coreml" (`.mlpackage`) or "coreai" (`.aimodel`, iOS / macOS 27); nil in folders before Core AI (Core ML).
        public var format: String?
        public var compression: Compression?
        /// The inputs the package takes, as the app builds them.
        public var inputs: [TensorDescription]
        public var outputs: [TensorDescription]
        /// Chunked UNet: the packages in execution order (`UnetChunk1`, `UnetChunk2`), else nil.
        public var chunks: [String]?

        /// The package files this component needs, in execution order.
        public var files: [String] { chunks ?? file.map { [$0] } ?? [] }

        /// The declared input called `name`, if any.
        public func input(_ name: String) -> TensorDescription? { inputs.first { $0.name == name } }
    }

    /// Weight compression summary.
    public struct Compression: Codable, Equatable, Sendable {
        public var mode: String
        /// Average bits per palettized weight.
        public var bits: Double?
        public var method: String?
        public var granularity: String?
    }

    /// Name, shape and dtype of a model input or output (also the blocks manifest's).
    public struct TensorDescription: Codable, Equatable, Sendable {
        public var name: String
        public var shape: [Int]
        /// "float32" or "int32" (a package may declare "float16").
        public var dtype: String
    }

    /// The tokenizer configuration of this folder.
    public var tokenizerConfiguration: CLIPTokenizer.Configuration {
        .init(maxLength: tokenizer.maxLength, bosTokenID: tokenizer.bosTokenId,
              eosTokenID: tokenizer.eosTokenId, padTokenID: tokenizer.padTokenId)
    }

    /// The noise schedule of this folder.
    public var noiseScheduleModel: NoiseSchedule {
        NoiseSchedule(numTrainTimesteps: noiseSchedule.numTrainTimesteps, betaStart: noiseSchedule.betaStart,
                      betaEnd: noiseSchedule.betaEnd, betaSchedule: noiseSchedule.betaSchedule,
                      finalAlphaCumprod: sampler.finalAlphaCumprod)
    }

    /// The sampling timesteps for `steps`: the listed ones for the default step count, else the
    /// folder's spacing rule (the model may not have been distilled for that count).
    public func timesteps(steps: Int) throws -> [Int] {
        if steps == sampler.timesteps.count { return sampler.timesteps }
        return try sampler.timestepSpacing.timesteps(steps: steps, numTrainTimesteps: noiseSchedule.numTrainTimesteps,
                                                     stepsOffset: sampler.stepsOffset)
    }

    /// A DDIM sampler for `steps` steps.
    public func makeSampler(steps: Int) throws -> DDIMSampler {
        DDIMSampler(schedule: noiseScheduleModel, predictionType: predictionType, timesteps: try timesteps(steps: steps))
    }

    /// Output image height in pixels: `image.height`, else `image_size`, else `vaeFactor` x the
    /// latent height. `latent` stays authoritative for what the models take.
    public var imageHeight: Int { image?.height ?? imageSize ?? latent.height * Self.vaeFactor }

    /// Output image width in pixels: `image.width`, else `image_size`, else `vaeFactor` x the latent width.
    public var imageWidth: Int { image?.width ?? imageSize ?? latent.width * Self.vaeFactor }

    /// The latent shape for one image: `(1, channels, height, width)`.
    public var latentShape: [Int] { [1, latent.channels, latent.height, latent.width] }
}

extension PipelineDescription.Tokenizer {
    private enum CodingKeys: String, CodingKey {
        case vocab, merges, maxLength, bosTokenId, eosTokenId, padTokenId
    }

    /// Decodes the section; a missing `pad_token_id` reads as `eos_token_id`.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        vocab = try container.decode(String.self, forKey: .vocab)
        merges = try container.decode(String.self, forKey: .merges)
        maxLength = try container.decode(Int.self, forKey: .maxLength)
        bosTokenId = try container.decode(Int.self, forKey: .bosTokenId)
        eosTokenId = try container.decode(Int.self, forKey: .eosTokenId)
        padTokenId = try container.decodeIfPresent(Int.self, forKey: .padTokenId) ?? eosTokenId
    }
}
