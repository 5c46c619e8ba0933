import Foundation

/// Latent consistency sampling: diffusers' `LCMScheduler` (diffusers/schedulers/scheduling_lcm.py)
/// for LCM-distilled UNets and LCM-LoRAs.
///
/// At call `i` with `t = timesteps[i]`, `t_prev = previousTimesteps[i]` (negative: the end):
/// `c_skip = 0.25 / ((s t)^2 + 0.25)`, `c_out = s t / sqrt((s t)^2 + 0.25)` (`s` =
/// `timestep_scaling`, 10), `denoised = c_out x + c_skip z`; every call but the last draws one
/// noise tensor and returns `z' = a_prev denoised + s_prev noise`; the last returns `denoised`.
public struct LCMSampler: Sampler {
    /// The noise schedule the model was trained with.
    public let schedule: NoiseSchedule
    /// What the model's raw output means.
    public let predictionType: PredictionType
    /// The timestep of each call.
    public let timesteps: [Int]
    /// The timestep each call moves to (-1 after the last).
    public let previousTimesteps: [Int]
    /// The boundary-condition timestep scaling (10).
    public let timestepScaling: Double
    /// LCMScheduler's `clip_sample`: the x estimate is clamped to [-r, r] (nil: not clamped).
    public let clipSample: Double?

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

    /// An LCM sampler over the record's lists.
    public init(schedule: NoiseSchedule, predictionType: PredictionType, timesteps: [Int], previousTimesteps: [Int],
                timestepScaling: Double = 10, clipSample: Double? = nil) {
        self.clipSample = clipSample
        self.schedule = schedule
        self.predictionType = predictionType
        self.timesteps = timesteps
        self.previousTimesteps = previousTimesteps
        self.timestepScaling = timestepScaling
    }

    public mutating func step(index: Int, modelOutput: Tensor, sample: Tensor,
                              random: inout TorchRandomSource) throws -> SamplerStep {
        guard index >= beginIndex, timesteps.indices.contains(index), index < previousTimesteps.count else {
            throw SamplerError.stepOutOfRange(index, count: timesteps.count)
        }
        guard modelOutput.shape == sample.shape else { throw TensorError.incompatibleShapes(modelOutput.shape, sample.shape) }
        let t = timesteps[index]
        let (a, s) = schedule.alphaSigma(at: t)
        let (aPrev, sPrev) = schedule.alphaSigma(at: previousTimesteps[index])
        // get_scalings_for_boundary_condition_discrete, sigma_data = 0.5
        let scaled = Double(t) * timestepScaling
        let cSkip = 0.25 / (scaled * scaled + 0.25)
        let cOut = scaled / (scaled * scaled + 0.25).squareRoot()
        let last = index == timesteps.count - 1
        let noise = last ? [] : random.normalFloats(count: sample.count)
        var previous = sample
        var denoised = sample
        for i in sample.scalars.indices {
            let z = Double(sample.scalars[i])
            let (estimate, _) = estimates(Double(modelOutput.scalars[i]), z, alpha: a, sigma: s, predictionType)
            let x = clipSample.map { min(max(estimate, -$0), $0) } ?? estimate
            let d = cOut * x + cSkip * z
            denoised.scalars[i] = Float(d)
            previous.scalars[i] = last ? Float(d) : Float(aPrev * d + sPrev * Double(noise[i]))
        }
        return SamplerStep(previous: previous, predictedOriginal: denoised)
    }
}
