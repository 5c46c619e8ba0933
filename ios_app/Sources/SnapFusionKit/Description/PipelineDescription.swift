import Foundation

/// pipeline.json, format_version 1, 2 and 3 (docs/contracts.md sections 2 and 3): everything the app needs to
/// run a converted folder and nothing it must guess. Format 3 adds the optional VAE encoder component
/// (`components.encoder`, image-to-image) and the optional `sizes` list (multifunction packages, one
/// function per image size). Unknown keys are ignored. The Python twin is
/// snapfusion_coreml/contracts/pipeline_json.py (`PipelineManifest`); both read tests/golden/pipelines.json.
///
/// ```swift
/// let folder = try ConvertedFolder(url: url)          // reads and checks pipeline.json once
/// let sampler = try folder.description.makeSampler(steps: folder.description.sampler.defaultSteps)
/// ```
public struct PipelineDescription: Codable, Equatable, Sendable {
    /// The formats this reader understands: 1 (DDIM only), 2 (the sampler record of section 3) and 3
    /// (optional `components.encoder` and `sizes`).
    public static let supportedFormatVersions = [1, 2, 3]
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
    /// The image sizes the size-dependent packages (UNet, decoder, encoder) hold one function each
    /// for, the first one the default (equal to `image` and `latent`); nil: one size, every
    /// package has the one function `main`. Use `availableSizes`.
    public var sizes: [Size]?

    /// Image height and width in pixels.
    public struct ImageSize: Codable, Equatable, Sendable {
        public var height: Int
        public var width: Int

        /// A size in pixels.
        public init(height: Int, width: Int) {
            self.height = height
            self.width = width
        }
    }

    /// Latent height and width of one entry of `sizes`.
    public struct LatentSize: Codable, Equatable, Sendable {
        public var height: Int
        public var width: Int

        /// A size in latent cells.
        public init(height: Int, width: Int) {
            self.height = height
            self.width = width
        }
    }

    /// One entry of `sizes`: the package function (`image_{H}x{W}`) that runs this image size.
    public struct Size: Codable, Equatable, Sendable {
        /// The function name of the size-dependent packages (`MLModelConfiguration.functionName`).
        public var function: String
        public var image: ImageSize
        public var latent: LatentSize

        /// An entry from its parts.
        public init(function: String, image: ImageSize, latent: LatentSize) {
            self.function = function
            self.image = image
            self.latent = latent
        }

        /// "HxW" (height first, as `--image-size` takes it).
        public var label: String { "\(image.height)x\(image.width)" }
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

    /// The sampler record (docs/contracts.md section 3). format_version 2 lists everything the
    /// sampler named by `name` uses (keys it does not use are nil); format_version 1 folders
    /// hold DDIM's `timesteps`, `eta`, `timestep_spacing`, `steps_offset` and `final_alpha_cumprod`.
    public struct Sampler: Codable, Equatable, Sendable {
        /// `SamplerName` raw value: ddim, pndm, dpmsolver++, euler, euler_ancestral, lcm, tcd.
        public var name: String
        /// The diffusers class whose arithmetic the sampler equals (informative).
        public var schedulerClass: String?
        /// ddim: 0; tcd: gamma.
        public var eta: Double?
        /// ddim, lcm: the x estimate is clamped to [-clip_sample, clip_sample] (nil: not clamped).
        public var clipSample: Double?
        /// dpmsolver++, euler: whether the sigmas are Karras' (informative: `sigmas` holds them).
        public var useKarrasSigmas: Bool?
        /// How the lists were planned (informative in format_version 2).
        public var timestepSpacing: TimestepSpacing?
        /// The offset added to leading-spaced timesteps (informative in format_version 2).
        public var stepsOffset: Int?
        /// The step count the lists were planned for.
        public var defaultSteps: Int
        /// The UNet's `timestep` input, one per UNet call, in order (pndm: `steps + 1`, one repeated).
        public var timesteps: [Double]
        /// Alpha samplers: the timestep each call moves to (negative: the end).
        public var previousTimesteps: [Int]?
        /// pndm: the timestep each call moves from.
        public var currentTimesteps: [Int]?
        /// Sigma samplers: one per call, then the final sigma.
        public var sigmas: [Double]?
        /// Initial latents are `randn x init_noise_sigma` (nil: 1).
        public var initNoiseSigma: Double?
        /// Whether the UNet input is `z / sqrt(sigma^2 + 1)` (nil: false).
        public var scaleModelInput: Bool?
        /// alpha_cumprod of "the end" (alpha samplers).
        public var finalAlphaCumprod: Double?
        /// dpmsolver++: 1 or 2.
        public var solverOrder: Int?
        /// dpmsolver++: "midpoint" (or "heun").
        public var solverType: String?
        /// dpmsolver++: first-order last step under 15 steps.
        public var lowerOrderFinal: Bool?
        /// dpmsolver++: first-order last step always.
        public var eulerAtFinal: Bool?
        /// dpmsolver++: "zero" (the final sigma is 0) or "sigma_min".
        public var finalSigmasType: String?
        /// lcm, tcd: the distillation schedule the timesteps were picked from (informative).
        public var originalInferenceSteps: Int?
        /// lcm: the boundary-condition timestep scaling (10).
        public var timestepScaling: Double?

        /// A format_version 1 (DDIM) record.
        public init(name: String = SamplerName.ddim.rawValue, eta: Double = 0, timestepSpacing: TimestepSpacing,
                    stepsOffset: Int = 0, defaultSteps: Int, timesteps: [Double], finalAlphaCumprod: Double = 1) {
            self.name = name
            self.eta = eta
            self.timestepSpacing = timestepSpacing
            self.stepsOffset = stepsOffset
            self.defaultSteps = defaultSteps
            self.timesteps = timesteps
            self.finalAlphaCumprod = finalAlphaCumprod
        }
    }

    /// Classifier-free guidance defaults and how the UNet runs it.
    public struct Guidance: Codable, Equatable, Sendable {
        public var defaultScale: Double
        /// 2: one call with `[uncond, cond]`; 1: two calls.
        public var unetBatch: Int
        /// Set for guidance-distilled UNets (full LCM models): the UNet takes the guidance scale
        /// as an embedding and runs once per step on the conditional prompt alone, without
        /// classifier-free guidance. nil (or null) for every other UNet.
        public var embedding: GuidanceEmbeddingInput?
    }

    /// `guidance.embedding`: the UNet input that takes `GuidanceEmbedding.embedding(guidanceScale:dim:)`.
    public struct GuidanceEmbeddingInput: Codable, Equatable, Sendable {
        /// The UNet input's name: "timestep_cond".
        public var input: String
        /// The embedding size D (the UNet's `time_cond_proj_dim`).
        public var dim: Int
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

    /// The converted components; text-to-image needs the first three, image-to-image also `encoder`.
    public struct Components: Codable, Equatable, Sendable {
        public var textEncoder: Component?
        public var unet: Component?
        public var decoder: Component?
        /// The VAE encoder (`VAEEncoder.mlpackage`, format_version 3): image `z` (1, 3, H, W) in
        /// [-1, 1] -> `latent` (1, 2C, h, w), the posterior's mean then log-variance; nil when not converted.
        public var encoder: Component?
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
                      finalAlphaCumprod: sampler.finalAlphaCumprod ?? 1)
    }

    /// The sampler `sampler.name` selects (format_version 1: DDIM).
    public var samplerName: SamplerName? {
        formatVersion == 1 ? .ddim : SamplerName(rawValue: sampler.name)
    }

    /// The UNet timesteps for `steps` sampling steps.
    ///
    /// format_version 1: the listed ones for the listed count, else the folder's spacing rule (the
    /// model may not have been distilled for that count). format_version 2: the listed ones;
    /// the lists were planned for `sampler.default_steps` only.
    /// - Throws: `SamplerError.stepsFixedByFolder` for another count in a format_version 2 folder.
    public func timesteps(steps: Int) throws -> [Double] {
        if formatVersion >= 2 {
            guard steps == sampler.defaultSteps else {
                throw SamplerError.stepsFixedByFolder(requested: steps, planned: sampler.defaultSteps)
            }
            return sampler.timesteps
        }
        if steps == sampler.timesteps.count { return sampler.timesteps }
        return try (sampler.timestepSpacing ?? .trailing).timesteps(steps: steps, numTrainTimesteps: noiseSchedule.numTrainTimesteps,
                                                                    stepsOffset: sampler.stepsOffset ?? 0).map(Double.init)
    }

    /// The sampler for one generation of `steps` steps: DDIM over `timesteps(steps:)` for
    /// format_version 1, the record's sampler for format_version 2 (`SamplerName.makeSampler`).
    public func makeSampler(steps: Int) throws -> any SnapFusionKit.Sampler {
        let timesteps = try timesteps(steps: steps)
        guard formatVersion >= 2 else {
            return DDIMSampler(schedule: noiseScheduleModel, predictionType: predictionType, timesteps: timesteps.map { Int($0) })
        }
        guard let name = samplerName else {
            throw PipelineDescriptionError.unsupportedSampler(sampler.name, Self.fileName)
        }
        return try name.makeSampler(record: sampler, schedule: noiseScheduleModel, predictionType: predictionType)
    }

    /// Output image height in pixels: `image.height`, else `image_size`, else `vaeFactor` x the
    /// latent height. `latent` stays authoritative for what the models take.
    public var imageHeight: Int { image?.height ?? imageSize ?? latent.height * Self.vaeFactor }

    /// Output image width in pixels: `image.width`, else `image_size`, else `vaeFactor` x the latent width.
    public var imageWidth: Int { image?.width ?? imageSize ?? latent.width * Self.vaeFactor }

    /// The latent shape for one image of the default size: `(1, channels, height, width)`.
    public var latentShape: [Int] { [1, latent.channels, latent.height, latent.width] }

    /// The sizes this folder generates, the default first: `sizes`, or (no `sizes`) the one
    /// top-level size with function `main`.
    public var availableSizes: [Size] {
        sizes ?? [Size(function: "main", image: ImageSize(height: imageHeight, width: imageWidth),
                       latent: LatentSize(height: latent.height, width: latent.width))]
    }

    /// The size of an image `height` x `width`; nil asks for the default.
    /// - Throws: `PipelineError.unsupportedImageSize` (listing the available sizes) for a size the folder lacks.
    public func size(height: Int, width: Int) throws -> Size {
        guard let found = availableSizes.first(where: { $0.image.height == height && $0.image.width == width }) else {
            throw PipelineError.unsupportedImageSize(height: height, width: width, available: availableSizes.map(\.label))
        }
        return found
    }

    /// The package function that runs latents of `height` x `width` (the UNet and decoder), nil
    /// when the folder has no `sizes` (single-function packages: load them without a function name).
    /// - Throws: `PipelineError.unsupportedImageSize` when no listed size has that latent.
    public func function(latentHeight height: Int, width: Int) throws -> String? {
        guard let sizes else { return nil }
        guard let found = sizes.first(where: { $0.latent.height == height && $0.latent.width == width }) else {
            throw PipelineError.unsupportedImageSize(height: height * Self.vaeFactor, width: width * Self.vaeFactor,
                                                     available: sizes.map(\.label))
        }
        return found.function
    }

    /// The package function that encodes images of `height` x `width` (the VAE encoder); nil
    /// without `sizes`.
    /// - Throws: `PipelineError.unsupportedImageSize` when no listed size has that image size.
    public func function(imageHeight height: Int, width: Int) throws -> String? {
        guard sizes != nil else { return nil }
        return try size(height: height, width: width).function
    }
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
