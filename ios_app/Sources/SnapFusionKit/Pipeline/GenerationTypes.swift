import Foundation

/// What to generate.
public struct GenerationRequest: Equatable, Sendable {
    public var prompt: String
    /// The unconditional prompt of classifier-free guidance ("" as in training): encoded in
    /// place of the empty prompt when guidance runs (w > 1 and no guidance embedding), ignored
    /// otherwise, as diffusers' `negative_prompt`.
    public var negativePrompt: String
    /// Sampling steps; nil uses pipeline.json's default (format_version 2 folders take only that count).
    public var steps: Int?
    /// Guidance scale w (diffusers' convention, 1 = none); nil uses pipeline.json's default.
    public var guidanceScale: Double?
    /// Seed of the initial latents (`torch.randn` on a CPU generator seeded with it).
    public var seed: UInt64
    /// Image-to-image: the starting image (needs a folder with a VAE encoder). Its size should be
    /// the generated size; on Apple platforms another size is center-cropped to the aspect ratio
    /// and resized with Core Graphics (high-quality interpolation), elsewhere it is refused
    /// (`PipelineError.initImageSize`). nil: text-to-image.
    public var initImage: RGBImage?
    /// Image-to-image: how much of the sampler's schedule runs, in (0, 1] (diffusers' `strength`;
    /// 1 starts from pure noise at the first timestep, 0.5 runs the second half). nil: 0.8 with
    /// an `initImage`; must be nil without one.
    public var strength: Double?
    /// The image size to generate (height, width), one of the folder's `sizes`; nil: the folder's default size.
    public var imageSize: PipelineDescription.ImageSize?

    /// diffusers' default strength of StableDiffusionImg2ImgPipeline.
    public static let defaultStrength = 0.8

    /// Creates a request; nil steps and guidance take the folder's defaults, nil `initImage` is
    /// text-to-image, nil `imageSize` the folder's default size.
    public init(prompt: String, negativePrompt: String = "", steps: Int? = nil, guidanceScale: Double? = nil, seed: UInt64 = 0,
                initImage: RGBImage? = nil, strength: Double? = nil, imageSize: PipelineDescription.ImageSize? = nil) {
        self.prompt = prompt
        self.negativePrompt = negativePrompt
        self.steps = steps
        self.guidanceScale = guidanceScale
        self.seed = seed
        self.initImage = initImage
        self.strength = strength
        self.imageSize = imageSize
    }
}

/// Wall-clock time of each stage of one generation, in milliseconds.
public struct StageTimings: Codable, Equatable, Sendable {
    public var tokenizerMs: Double = 0
    /// Both prompts when guidance is on.
    public var textEncoderMs: Double = 0
    /// Image-to-image: preparing the starting image and the VAE encoder (0 for text-to-image).
    public var imageEncoderMs: Double = 0
    /// One entry per UNet step (both guidance halves included).
    public var unetStepMs: [Double] = []
    public var decoderMs: Double = 0
    /// Tokenization to decoded image, model loading excluded.
    public var endToEndMs: Double = 0

    public init() {}
}

/// Where a running generation is.
public struct GenerationProgress: Sendable {
    /// The stage that just finished (`textEncoder`, `imageEncoder` for image-to-image, `unet`) or
    /// is about to start (`decoder`); `done` comes last, with every timing filled in.
    public enum Stage: String, Sendable {
        case textEncoder, imageEncoder, unet, decoder, done
    }

    public var stage: Stage
    /// Completed UNet steps.
    public var step: Int
    /// Total UNet steps (image-to-image: the steps the strength leaves).
    public var totalSteps: Int
    /// Timings of the stages finished so far.
    public var timings: StageTimings
    /// The decoded estimate of the final image after this UNet step, when previews were asked
    /// for (`previewEvery`) and this step is one of them; nil otherwise.
    public var preview: RGBAImage?

    /// A progress report without a preview.
    public init(stage: Stage, step: Int, totalSteps: Int, timings: StageTimings, preview: RGBAImage? = nil) {
        self.stage = stage
        self.step = step
        self.totalSteps = totalSteps
        self.timings = timings
        self.preview = preview
    }
}

/// The outcome of one generation.
public struct GenerationResult: Sendable {
    /// The final latent `(1, 4, h, w)` (before the scale factor division).
    public var latents: Tensor
    /// The decoded image `(1, 3, H, W)` in [-1, 1].
    public var image: Tensor
    public var timings: StageTimings
    /// The UNet timesteps of the generation, one per UNet step (image-to-image: from the strength's start on).
    public var timesteps: [Double]
}

/// Errors while generating.
public enum PipelineError: LocalizedError, Equatable {
    case cancelled
    case unexpectedShape(what: String, expected: [Int], got: [Int])
    case invalidGuidanceBatch(Int)
    /// A component returned NaN or infinity (fp16 overflow, usually on the Neural Engine).
    /// `step` is the 1-based UNet step (nil for the text encoder and decoder); `retried` says
    /// whether the call was already run again on `.cpuAndGPU`.
    case nonFiniteOutput(component: PipelineDescription.ComponentName, step: Int?, count: Int, retried: Bool)
    /// Image-to-image on a folder converted without the VAE encoder.
    case missingEncoder
    /// A strength outside (0, 1].
    case strengthOutOfRange(Double)
    /// A strength given without a starting image.
    case strengthWithoutImage(Double)
    /// `int(steps * strength)` is 0: no sampling step would run (diffusers raises too).
    case noStepsLeft(strength: Double, steps: Int)
    /// The starting image is not the generated size and this platform has no resampler (Linux).
    case initImageSize(expected: PipelineDescription.ImageSize, got: PipelineDescription.ImageSize)
    /// A size the folder has no function for; `available` lists "HxW" labels, the default first.
    case unsupportedImageSize(height: Int, width: Int, available: [String])

    public var errorDescription: String? {
        switch self {
        case .cancelled:
            return "generation was cancelled"
        case let .unexpectedShape(what, expected, got):
            return "expected \(what) of shape \(expected), got \(got)"
        case let .invalidGuidanceBatch(batch):
            return "expected guidance.unet_batch 1 or 2 in pipeline.json, got \(batch)"
        case let .nonFiniteOutput(component, step, count, retried):
            let at = step.map { " at step \($0)" } ?? ""
            let advice = retried ? "also after retrying on cpuAndGPU" : "retry with compute units cpuAndGPU, or enable NonFiniteRecovery.retryOnCPUAndGPU"
            return "expected finite values from \(component.rawValue)\(at), got \(count) NaN or infinite values (\(advice))"
        case .missingEncoder:
            return "this folder has no encoder, which image-to-image needs: convert with --components including encoder"
        case let .strengthOutOfRange(strength):
            return "expected strength in (0, 1], got \(strength)"
        case let .strengthWithoutImage(strength):
            return "expected a starting image with strength \(strength), got none (strength is for image-to-image only)"
        case let .noStepsLeft(strength, steps):
            return "expected at least one sampling step, got none: strength \(strength) of \(steps) steps runs int(\(steps) * \(strength)) = 0 "
                + "(raise the strength or the steps)"
        case let .initImageSize(expected, got):
            return "expected a starting image of \(expected.height)x\(expected.width) (height x width), got \(got.height)x\(got.width): "
                + "resize it first (only Apple platforms resize the starting image)"
        case let .unsupportedImageSize(height, width, available):
            return "expected an image size this folder was converted for (\(available.joined(separator: ", ")); height x width), "
                + "got \(height)x\(width)"
        }
    }
}
