import Foundation

/// Trajectory consistency distillation sampling: diffusers' `TCDScheduler`
/// (diffusers/schedulers/scheduling_tcd.py) with gamma = `eta`.
///
/// At call `i` with `t = timesteps[i]`, `t_prev = previousTimesteps[i]` (0 after the last):
/// `t_s = floor((1 - eta) t_prev)` (in float32, as diffusers multiplies the timestep tensor),
/// `z_s = a_s x + s_s eps`; with `eta > 0` every call but the last draws one noise tensor and
/// returns `z' = sqrt(ac[t_prev] / ac[t_s]) z_s + sqrt(1 - ac[t_prev] / ac[t_s]) noise`, else `z_s`.
public struct TCDSampler: Sampler {
    /// The noise schedule the model was trained with.
    public let schedule: NoiseSchedule
    /// What the model's raw output means.
    public let predictionType: PredictionType
    /// The timestep of each call.
    public let timesteps: [Int]
    /// The timestep each call moves to (0 after the last).
    public let previousTimesteps: [Int]
    /// TCD's gamma: the share of each step that is re-noised (0: deterministic).
    public let eta: Double

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

    /// A TCD sampler over the record's lists.
    public init(schedule: NoiseSchedule, predictionType: PredictionType, timesteps: [Int], previousTimesteps: [Int],
                eta: Double = 0.3) {
        self.schedule = schedule
        self.predictionType = predictionType
        self.timesteps = timesteps
        self.previousTimesteps = previousTimesteps
        self.eta = eta
    }

    /// `t_s` of a previous timestep: `floor(float32(1 - eta) * float32(t_prev))`.
    public func intermediateTimestep(_ previous: Int) -> Int {
        Int((Float(1 - eta) * Float(previous)).rounded(.down))
    }

    public mutating func step(index: Int, modelOutput: Tensor, sample: Tensor,
                              random: inout TorchRandomSource) throws -> SamplerStep {
        guard index >= beginIndex, timesteps.indices.contains(index), index < previousTimesteps.count else {
            throw SamplerError.stepOutOfRange(index, count: timesteps.count)
        }
        guard modelOutput.shape == sample.shape else { throw TensorError.incompatibleShapes(modelOutput.shape, sample.shape) }
        let (a, s) = schedule.alphaSigma(at: timesteps[index])
        let tPrev = previousTimesteps[index]
        let tS = intermediateTimestep(tPrev)
        let (aS, sS) = schedule.alphaSigma(at: tS)
        let ratio = schedule.alphaCumprod(at: tPrev) / schedule.alphaCumprod(at: tS)
        let renoise = eta > 0 && index != timesteps.count - 1
        let noise = renoise ? random.normalFloats(count: sample.count) : []
        var previous = sample
        var original = sample
        for i in sample.scalars.indices {
            let z = Double(sample.scalars[i])
            let (x, eps) = estimates(Double(modelOutput.scalars[i]), z, alpha: a, sigma: s, predictionType)
            let zS = aS * x + sS * eps
            previous.scalars[i] = renoise ? Float(ratio.squareRoot() * zS + max(1 - ratio, 0).squareRoot() * Double(noise[i])) : Float(zS)
            original.scalars[i] = Float(x)
        }
        return SamplerStep(previous: previous, predictedOriginal: original)
    }
}
