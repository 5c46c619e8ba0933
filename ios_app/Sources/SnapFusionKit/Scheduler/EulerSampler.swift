import Foundation

/// Euler in sigma space: diffusers' `EulerDiscreteScheduler` (diffusers/schedulers/
/// scheduling_euler_discrete.py, with `s_churn` 0: no noise) and, with `ancestral`,
/// `EulerAncestralDiscreteScheduler` (scheduling_euler_ancestral_discrete.py), SD-Turbo's sampler.
///
/// The latents live at noise level `sigma` (initial latents = randn x `initNoiseSigma`); the UNet
/// sees `z / sqrt(sigma^2 + 1)`. With `sigma = sigmas[i]`, `next = sigmas[i + 1]`:
/// - x = z - sigma eps (epsilon), x = out (-sigma / sqrt(sigma^2 + 1)) + z / (sigma^2 + 1) (v);
/// - Euler: `z' = z + (z - x) / sigma (next - sigma)`;
/// - ancestral: `sigma_up = sqrt(next^2 (sigma^2 - next^2) / sigma^2)`,
///   `sigma_down = sqrt(next^2 - sigma_up^2)`, `z' = z + (z - x) / sigma (sigma_down - sigma) + noise sigma_up`,
///   with one `(1, C, h, w)` noise tensor drawn every call, the last one included.
public struct EulerSampler: Sampler {
    /// What the model's raw output means.
    public let predictionType: PredictionType
    /// The UNet timestep of each call (float: diffusers interpolates them).
    public let unetTimesteps: [Double]
    /// One per call, then the final sigma (0).
    public let sigmas: [Double]
    /// The initial latents' scale: the first sigma (trailing/linspace) or sqrt(sigma^2 + 1).
    public let initNoiseSigma: Double
    /// Whether the UNet input is `z / sqrt(sigma^2 + 1)` (the record's `scale_model_input`).
    public let scalesModelInput: Bool
    /// Euler ancestral: adds fresh noise at every call.
    public let ancestral: Bool

    /// An Euler (or, with `ancestral`, Euler ancestral) sampler over the record's lists.
    public init(predictionType: PredictionType, timesteps: [Double], sigmas: [Double], initNoiseSigma: Double,
                scalesModelInput: Bool = true, ancestral: Bool) {
        self.predictionType = predictionType
        self.unetTimesteps = timesteps
        self.sigmas = sigmas
        self.initNoiseSigma = initNoiseSigma
        self.scalesModelInput = scalesModelInput
        self.ancestral = ancestral
    }

    public private(set) var beginIndex = 0

    public mutating func setBeginIndex(_ index: Int) throws {
        try NoiseAdding.check(index, count: min(unetTimesteps.count, sigmas.count - 1))
        beginIndex = index
    }

    /// `x0 + sigmas[index] e` (EulerDiscreteScheduler.add_noise at the begin index).
    public func addNoise(to original: Tensor, noise: Tensor, index: Int) throws -> Tensor {
        try NoiseAdding.check(index, count: min(unetTimesteps.count, sigmas.count - 1))
        return try NoiseAdding.varianceExploding(original, noise, sigma: sigmas[index])
    }

    public func scaleModelInput(_ sample: Tensor, index: Int) -> Tensor {
        guard scalesModelInput, sigmas.indices.contains(index) else { return sample }
        let sigma = sigmas[index]
        let scale = (sigma * sigma + 1).squareRoot()
        var out = sample
        for i in out.scalars.indices { out.scalars[i] = Float(Double(sample.scalars[i]) / scale) }
        return out
    }

    public mutating func step(index: Int, modelOutput: Tensor, sample: Tensor,
                              random: inout TorchRandomSource) throws -> SamplerStep {
        guard index >= beginIndex, index < unetTimesteps.count, index + 1 < sigmas.count else {
            throw SamplerError.stepOutOfRange(index, count: unetTimesteps.count)
        }
        guard modelOutput.shape == sample.shape else { throw TensorError.incompatibleShapes(modelOutput.shape, sample.shape) }
        let sigma = sigmas[index]
        let next = sigmas[index + 1]
        var target = next
        var sigmaUp = 0.0
        if ancestral {
            sigmaUp = (next * next * (sigma * sigma - next * next) / (sigma * sigma)).squareRoot()
            target = (next * next - sigmaUp * sigmaUp).squareRoot()
        }
        let noise = ancestral ? random.normalFloats(count: sample.count) : []
        var previous = sample
        var original = sample
        for i in sample.scalars.indices {
            let z = Double(sample.scalars[i])
            let out = Double(modelOutput.scalars[i])
            let x: Double
            switch predictionType {
            case .epsilon: x = z - sigma * out
            case .vPrediction: x = out * (-sigma / (sigma * sigma + 1).squareRoot()) + z / (sigma * sigma + 1)
            }
            var z1 = z + (z - x) / sigma * (target - sigma)
            if ancestral { z1 += Double(noise[i]) * sigmaUp }
            previous.scalars[i] = Float(z1)
            original.scalars[i] = Float(x)
        }
        return SamplerStep(previous: previous, predictedOriginal: original)
    }
}
