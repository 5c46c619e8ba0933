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

    /// Creates a request; nil steps and guidance take the folder's defaults.
    public init(prompt: String, negativePrompt: String = "", steps: Int? = nil, guidanceScale: Double? = nil, seed: UInt64 = 0) {
        self.prompt = prompt
        self.negativePrompt = negativePrompt
        self.steps = steps
        self.guidanceScale = guidanceScale
        self.seed = seed
    }
}

/// Wall-clock time of each stage of one generation, in milliseconds.
public struct StageTimings: Codable, Equatable, Sendable {
    public var tokenizerMs: Double = 0
    /// Both prompts when guidance is on.
    public var textEncoderMs: Double = 0
    /// One entry per UNet step (both guidance halves included).
    public var unetStepMs: [Double] = []
    public var decoderMs: Double = 0
    /// Tokenization to decoded image, model loading excluded.
    public var endToEndMs: Double = 0

    public init() {}
}

/// Where a running generation is.
public struct GenerationProgress: Sendable {
    /// The stage that just finished (`textEncoder`, `unet`) or is about to start (`decoder`);
    /// `done` comes last, with every timing filled in.
    public enum Stage: String, Sendable {
        case textEncoder, unet, decoder, done
    }

    public var stage: Stage
    /// Completed UNet steps.
    public var step: Int
    /// Total UNet steps.
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
    /// The UNet timesteps of the generation, one per UNet step.
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
        }
    }
}
