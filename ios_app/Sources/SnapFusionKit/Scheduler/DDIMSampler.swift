import Foundation

/// Deterministic DDIM (eta = 0) over an explicit timestep list, in float64 as
/// `snapfusion_coreml.schedule.ddim_step`:
///
/// - v-prediction: `x = a z - s v`, `eps = s z + a v`; epsilon: `x = (z - s eps) / a`;
/// - `z_prev = a_prev x + s_prev eps`, where the step after the last timestep is "the end"
///   whose alpha_cumprod is `NoiseSchedule.finalAlphaCumprod`;
/// - latents and model outputs are float32, the arithmetic is float64, the result is rounded
///   back to float32.
public struct DDIMSampler: Sendable {
    /// The noise schedule the model was trained with.
    public let schedule: NoiseSchedule
    /// What the model's raw output means.
    public let predictionType: PredictionType
    /// Sampling timesteps, noisiest first (pipeline.json `sampler.timesteps`).
    public let timesteps: [Int]

    /// A sampler over `timesteps`.
    public init(schedule: NoiseSchedule, predictionType: PredictionType, timesteps: [Int]) {
        self.schedule = schedule
        self.predictionType = predictionType
        self.timesteps = timesteps
    }

    /// The timestep that follows step `index` (-1 after the last one).
    public func previousTimestep(after index: Int) -> Int {
        index + 1 < timesteps.count ? timesteps[index + 1] : -1
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
            let x: Double
            let eps: Double
            switch predictionType {
            case .vPrediction:
                x = a * z - s * out
                eps = s * z + a * out
            case .epsilon:
                eps = out
                x = (z - s * out) / a
            }
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

/// Errors configuring the sampler.
public enum SamplerError: LocalizedError, Equatable {
    case invalidStepCount(Int, maximum: Int)

    public var errorDescription: String? {
        switch self {
        case let .invalidStepCount(steps, maximum):
            return "expected 1 <= steps <= \(maximum), got \(steps)"
        }
    }
}
