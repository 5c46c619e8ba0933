import Foundation

/// Deterministic DDIM (eta = 0) over explicit timestep lists, in float64; equals diffusers'
/// `DDIMScheduler.step` with eta 0 (diffusers/schedulers/scheduling_ddim.py) and
/// `snapfusion_coreml.schedule.ddim_step`:
///
/// - v-prediction: `x = a z - s v`, `eps = s z + a v`; epsilon: `x = (z - s eps) / a`;
/// - `z_prev = a_prev x + s_prev eps` with `t_prev = previousTimesteps[i]`; a negative `t_prev`
///   is "the end" whose alpha_cumprod is `NoiseSchedule.finalAlphaCumprod`;
/// - latents and model outputs are float32, the arithmetic is float64, the result is rounded
///   back to float32.
public struct DDIMSampler: Sampler {
    /// The noise schedule the model was trained with.
    public let schedule: NoiseSchedule
    /// What the model's raw output means.
    public let predictionType: PredictionType
    /// Sampling timesteps, noisiest first (pipeline.json `sampler.timesteps`).
    public let timesteps: [Int]
    /// The timestep each step moves to (-1: the end), one per entry of `timesteps`.
    public let previousTimesteps: [Int]
    /// DDIMScheduler's `clip_sample`: the x estimate is clamped to [-r, r] (nil: not clamped);
    /// eps is the unclamped estimate, as diffusers uses it.
    public let clipSample: Double?

    /// A sampler over `timesteps`. Without `previousTimesteps` (format_version 1 folders) each
    /// step moves to the next listed timestep, the last one to the end (-1).
    public init(schedule: NoiseSchedule, predictionType: PredictionType, timesteps: [Int], previousTimesteps: [Int]? = nil,
                clipSample: Double? = nil) {
        self.schedule = schedule
        self.predictionType = predictionType
        self.timesteps = timesteps
        self.previousTimesteps = previousTimesteps ?? (Array(timesteps.dropFirst()) + [-1])
        self.clipSample = clipSample
    }

    /// The timestep that step `index` moves to (-1: the end).
    public func previousTimestep(after index: Int) -> Int {
        index < previousTimesteps.count ? previousTimesteps[index] : -1
    }

    public var unetTimesteps: [Double] { timesteps.map(Double.init) }

    public var initNoiseSigma: Double { 1 }

    public private(set) var beginIndex = 0

    public mutating func setBeginIndex(_ index: Int) throws {
        try NoiseAdding.check(index, count: timesteps.count)
        beginIndex = index
    }

    public func addNoise(to original: Tensor, noise: Tensor, index: Int) throws -> Tensor {
        try NoiseAdding.check(index, count: timesteps.count)
        return try NoiseAdding.alpha(original, noise, schedule: schedule, timestep: timesteps[index])
    }

    public mutating func step(index: Int, modelOutput: Tensor, sample: Tensor,
                              random: inout TorchRandomSource) throws -> SamplerStep {
        guard index >= beginIndex, timesteps.indices.contains(index) else { throw SamplerError.stepOutOfRange(index, count: timesteps.count) }
        let out = try step(modelOutput: modelOutput, sample: sample, timestep: timesteps[index],
                           previousTimestep: previousTimestep(after: index))
        return SamplerStep(previous: out.previous, predictedOriginal: out.predictedOriginal)
    }

    /// One DDIM step `t -> tPrev` for every element. Returns `(z_prev, x_hat)`.
    ///
    /// - Parameters:
    ///   - modelOutput: the (guided) prediction, same shape as `sample`.
    ///   - sample: `z_t`, e.g. `(1, 4, h, w)`.
    public func step(modelOutput: Tensor, sample: Tensor, timestep t: Int, previousTimestep tPrev: Int) throws -> (previous: Tensor, predictedOriginal: Tensor) {
        guard modelOutput.shape == sample.shape else {
            throw TensorError.incompatibleShapes(modelOutput.shape, sample.shape)
        }
        let (a, s) = schedule.alphaSigma(at: t)
        let (aPrev, sPrev) = schedule.alphaSigma(at: tPrev)
        var previous = sample
        var original = sample
        for i in sample.scalars.indices {
            let z = Double(sample.scalars[i])
            let out = Double(modelOutput.scalars[i])
            let (estimate, eps) = estimates(out, z, alpha: a, sigma: s, predictionType)
            let x = clipSample.map { min(max(estimate, -$0), $0) } ?? estimate
            previous.scalars[i] = Float(aPrev * x + sPrev * eps)
            original.scalars[i] = Float(x)
        }
        return (previous, original)
    }

    /// Classifier-free guidance in float32, diffusers' convention: `uncond + w (cond - uncond)`
    /// (w = 1 is no guidance).
    public static func guide(conditional: Tensor, unconditional: Tensor, scale: Float) throws -> Tensor {
        guard conditional.shape == unconditional.shape else {
            throw TensorError.incompatibleShapes(conditional.shape, unconditional.shape)
        }
        var out = unconditional
        for i in out.scalars.indices {
            let u = unconditional.scalars[i]
            out.scalars[i] = u + scale * (conditional.scalars[i] - u)
        }
        return out
    }
}
