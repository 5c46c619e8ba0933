import Foundation

/// PLMS, the linear multistep half of PNDM: diffusers' `PNDMScheduler.step_plms` with
/// `skip_prk_steps` (diffusers/schedulers/scheduling_pndm.py), Stable Diffusion 1.x's default.
///
/// Call `i` is PLMS step `counter = i`. The record lists `steps + 1` UNet timesteps (one
/// repeated) and, per call, the timestep the step moves from (`currentTimesteps`) and to
/// (`previousTimesteps`, negative: the end). The raw model outputs are kept as diffusers keeps
/// them (`ets`, the last four) and combined with the Adams-Bashforth weights of their count;
/// call 1 averages with call 0's output and restarts from the sample call 0 started from.
/// v-prediction outputs are turned into epsilon after combining, with the step's own sample,
/// as `_get_prev_sample` does.
///
/// Image-to-image (`setBeginIndex(b)` with b > 0) follows diffusers too: PNDMScheduler has no
/// begin index, so its counter restarts at 0 on `timesteps[b]` and each call's step is derived
/// from its UNet timestep `t` and the ratio `r = num_train_timesteps // steps` as `step_plms` does:
/// counter 1 goes from `t + r` to `t`, every other counter from `t` to `t - r` (the record's
/// `current_timesteps`/`previous_timesteps` are these for b = 0).
public struct PNDMSampler: Sampler {
    /// The noise schedule the model was trained with.
    public let schedule: NoiseSchedule
    /// What the model's raw output means.
    public let predictionType: PredictionType
    /// The UNet timestep of each call (`steps + 1` calls, the second timestep repeated).
    public let unetTimesteps: [Double]
    /// The timestep each call's step moves from.
    public let currentTimesteps: [Int]
    /// The timestep each call's step moves to (negative: the end).
    public let previousTimesteps: [Int]
    /// Raw model outputs of the calls so far (call 1's excepted), at most the last four.
    private var ets: [[Float]] = []
    /// The sample call 0 started from, until call 1 uses it.
    private var firstSample: Tensor?

    public var initNoiseSigma: Double { 1 }
    public private(set) var beginIndex = 0

    /// Restarts the counter and the output history at call `index`.
    public mutating func setBeginIndex(_ index: Int) throws {
        try NoiseAdding.check(index, count: min(unetTimesteps.count, currentTimesteps.count))
        beginIndex = index
        ets = []
        firstSample = nil
    }

    public func addNoise(to original: Tensor, noise: Tensor, index: Int) throws -> Tensor {
        try NoiseAdding.check(index, count: unetTimesteps.count)
        return try NoiseAdding.alpha(original, noise, schedule: schedule, timestep: Int(unetTimesteps[index]))
    }

    /// The (current, previous) timesteps of call `index`: the record's for a whole run, else
    /// `step_plms`'s from the call's UNet timestep and its counter `index - beginIndex`.
    func stepTimesteps(_ index: Int) -> (current: Int, previous: Int) {
        guard beginIndex > 0 else { return (currentTimesteps[index], previousTimesteps[index]) }
        let ratio = schedule.alphasCumprod.count / max(unetTimesteps.count - 1, 1)
        let t = Int(unetTimesteps[index])
        return index - beginIndex == 1 ? (t + ratio, t) : (t, t - ratio)
    }

    /// A PLMS sampler over the record's lists (equal lengths: checked by `PipelineDescription.decode`).
    public init(schedule: NoiseSchedule, predictionType: PredictionType, timesteps: [Double],
                currentTimesteps: [Int], previousTimesteps: [Int]) {
        self.schedule = schedule
        self.predictionType = predictionType
        self.unetTimesteps = timesteps
        self.currentTimesteps = currentTimesteps
        self.previousTimesteps = previousTimesteps
    }

    public mutating func step(index: Int, modelOutput: Tensor, sample: Tensor,
                              random: inout TorchRandomSource) throws -> SamplerStep {
        guard index >= beginIndex, currentTimesteps.indices.contains(index), index < previousTimesteps.count,
              index < unetTimesteps.count else {
            throw SamplerError.stepOutOfRange(index, count: currentTimesteps.count)
        }
        guard modelOutput.shape == sample.shape else { throw TensorError.incompatibleShapes(modelOutput.shape, sample.shape) }
        let out = modelOutput.scalars
        var z = sample
        let counter = index - beginIndex
        if counter != 1 {
            ets = Array(ets.suffix(3)) + [out]
        }
        // The combined output per element, as step_plms chooses it from len(ets) and the counter.
        let combine: (Int) -> Double
        switch (ets.count, counter) {
        case (1, 0):
            firstSample = sample
            combine = { Double(out[$0]) }
        case (1, 1):
            guard let first = firstSample else { throw SamplerError.stepOutOfRange(index, count: currentTimesteps.count) }
            z = first
            firstSample = nil
            let e = ets[0]
            combine = { (Double(out[$0]) + Double(e[$0])) / 2 }
        case (2, _):
            let (e1, e2) = (ets[1], ets[0])
            combine = { (3 * Double(e1[$0]) - Double(e2[$0])) / 2 }
        case (3, _):
            let (e1, e2, e3) = (ets[2], ets[1], ets[0])
            combine = { (23 * Double(e1[$0]) - 16 * Double(e2[$0]) + 5 * Double(e3[$0])) / 12 }
        default:
            let (e1, e2, e3, e4) = (ets[3], ets[2], ets[1], ets[0])
            combine = { (55 * Double(e1[$0]) - 59 * Double(e2[$0]) + 37 * Double(e3[$0]) - 9 * Double(e4[$0])) / 24 }
        }

        // _get_prev_sample: formula (9) of the PNDM paper, from current to previous timestep.
        let (current, previousTimestep) = stepTimesteps(index)
        let ac = schedule.alphaCumprod(at: current)
        let acPrev = schedule.alphaCumprod(at: previousTimestep)
        let (a, s) = (ac.squareRoot(), max(1 - ac, 0).squareRoot())
        let sampleCoefficient = (acPrev / ac).squareRoot()
        let denominator = ac * max(1 - acPrev, 0).squareRoot() + (ac * (1 - ac) * acPrev).squareRoot()
        var previous = z
        var original = z
        for i in z.scalars.indices {
            let zi = Double(z.scalars[i])
            var eps = combine(i)
            if predictionType == .vPrediction { eps = a * eps + s * zi }
            previous.scalars[i] = Float(sampleCoefficient * zi - (acPrev - ac) * eps / denominator)
            original.scalars[i] = Float((zi - s * eps) / a)
        }
        return SamplerStep(previous: previous, predictedOriginal: original)
    }
}
