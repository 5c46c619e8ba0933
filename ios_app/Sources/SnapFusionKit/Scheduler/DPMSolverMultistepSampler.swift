import Foundation

/// DPM-Solver++ (multistep, orders 1 and 2): diffusers' `DPMSolverMultistepScheduler` with
/// `algorithm_type` "dpmsolver++" (diffusers/schedulers/scheduling_dpmsolver_multistep.py), the
/// "DPM++ 2M" (and, with Karras sigmas in the record, "DPM++ 2M Karras") of most SD front ends.
///
/// With `sigma = sigmas[i]`: `alpha_t = 1 / sqrt(sigma^2 + 1)`, `sigma_t = sigma alpha_t`,
/// `lambda = log alpha_t - log sigma_t`; the model output becomes the data estimate `x0`
/// (`convert_model_output`), then the first-order update (first call; the last one when
/// `lower_order_final` applies) or the second-order one (`midpoint` or `heun`) from the last two
/// estimates. A final sigma of 0 makes the last update return `x0`.
public struct DPMSolverMultistepSampler: Sampler {
    /// What the model's raw output means.
    public let predictionType: PredictionType
    /// The UNet timestep of each call.
    public let unetTimesteps: [Double]
    /// One per call, then the final sigma.
    public let sigmas: [Double]
    /// 1 or 2 (2M: 2).
    public let solverOrder: Int
    /// The second-order update: "midpoint" or "heun".
    public let solverType: String
    /// First-order last step (and, under 15 steps, as diffusers decides it).
    public let lowerOrderFinal: Bool
    /// First-order last step regardless of the step count.
    public let eulerAtFinal: Bool
    /// "zero" (the last sigma is 0: first-order last step) or "sigma_min".
    public let finalSigmasType: String
    /// The data estimate of the previous call (diffusers' `model_outputs[-2]` at the next call).
    private var previousEstimate: [Double]?
    private var lowerOrderNums = 0

    public var initNoiseSigma: Double { 1 }
    public private(set) var beginIndex = 0

    /// Starts at call `index` with an empty history (the first update there is first order, as
    /// diffusers' `lower_order_nums` starts at 0); the lists stay indexed as in a whole run.
    public mutating func setBeginIndex(_ index: Int) throws {
        try NoiseAdding.check(index, count: min(unetTimesteps.count, sigmas.count - 1))
        beginIndex = index
        previousEstimate = nil
        lowerOrderNums = 0
    }

    /// `alpha_t x0 + sigma_t e` at `sigmas[index]` (DPMSolverMultistepScheduler.add_noise).
    public func addNoise(to original: Tensor, noise: Tensor, index: Int) throws -> Tensor {
        try NoiseAdding.check(index, count: min(unetTimesteps.count, sigmas.count - 1))
        return try NoiseAdding.variancePreservingSigma(original, noise, sigma: sigmas[index])
    }

    /// - Throws: `SamplerError.unsupportedOption` for orders other than 1 and 2 or a solver
    ///   type other than "midpoint" and "heun".
    public init(predictionType: PredictionType, timesteps: [Double], sigmas: [Double], solverOrder: Int = 2,
                solverType: String = "midpoint", lowerOrderFinal: Bool = true, eulerAtFinal: Bool = false,
                finalSigmasType: String = "zero") throws {
        guard solverOrder == 1 || solverOrder == 2 else {
            throw SamplerError.unsupportedOption("solver_order \(solverOrder) (1 or 2)", sampler: SamplerName.dpmSolverPlusPlus.rawValue)
        }
        guard solverType == "midpoint" || solverType == "heun" else {
            throw SamplerError.unsupportedOption("solver_type \(solverType) (midpoint or heun)", sampler: SamplerName.dpmSolverPlusPlus.rawValue)
        }
        self.predictionType = predictionType
        self.unetTimesteps = timesteps
        self.sigmas = sigmas
        self.solverOrder = solverOrder
        self.solverType = solverType
        self.lowerOrderFinal = lowerOrderFinal
        self.eulerAtFinal = eulerAtFinal
        self.finalSigmasType = finalSigmasType
    }

    /// `(alpha_t, sigma_t, lambda_t)` of a sigma (`_sigma_to_alpha_sigma_t`); lambda is +inf at sigma 0.
    private static func parameters(_ sigma: Double) -> (alpha: Double, sigma: Double, lambda: Double) {
        let alpha = 1 / (sigma * sigma + 1).squareRoot()
        let sigmaT = sigma * alpha
        return (alpha, sigmaT, log(alpha) - log(sigmaT))
    }

    public mutating func step(index: Int, modelOutput: Tensor, sample: Tensor,
                              random: inout TorchRandomSource) throws -> SamplerStep {
        let count = unetTimesteps.count
        guard index >= beginIndex, index < count, index + 1 < sigmas.count else { throw SamplerError.stepOutOfRange(index, count: count) }
        guard modelOutput.shape == sample.shape else { throw TensorError.incompatibleShapes(modelOutput.shape, sample.shape) }
        let lowerFinal = index == count - 1 && (eulerAtFinal || (lowerOrderFinal && count < 15) || finalSigmasType == "zero")

        // convert_model_output: the data estimate x0 at sigma_s0.
        let s0 = Self.parameters(sigmas[index])
        let estimate = zip(modelOutput.scalars, sample.scalars).map { out, z -> Double in
            let (o, zd) = (Double(out), Double(z))
            switch predictionType {
            case .epsilon: return (zd - s0.sigma * o) / s0.alpha
            case .vPrediction: return s0.alpha * zd - s0.sigma * o
            }
        }
        let t = Self.parameters(sigmas[index + 1])
        let h = t.lambda - s0.lambda
        let expm = exp(-h) - 1  // exp(-h) - 1 as diffusers writes it (not expm1)
        var previous = sample
        if solverOrder == 1 || lowerOrderNums < 1 || lowerFinal {
            // dpm_solver_first_order_update
            for i in previous.scalars.indices {
                previous.scalars[i] = Float((t.sigma / s0.sigma) * Double(sample.scalars[i]) - (t.alpha * expm) * estimate[i])
            }
        } else {
            // multistep_dpm_solver_second_order_update with m0 = this estimate, m1 = the previous one
            guard let m1 = previousEstimate, index >= beginIndex + 1 else { throw SamplerError.stepOutOfRange(index, count: count) }
            let s1 = Self.parameters(sigmas[index - 1])
            let r0 = (s0.lambda - s1.lambda) / h
            for i in previous.scalars.indices {
                let d0 = estimate[i]
                let d1 = (1 / r0) * (estimate[i] - m1[i])
                var x = (t.sigma / s0.sigma) * Double(sample.scalars[i]) - (t.alpha * expm) * d0
                if solverType == "midpoint" {
                    x -= 0.5 * (t.alpha * expm) * d1
                } else {
                    x += (t.alpha * (expm / h + 1)) * d1
                }
                previous.scalars[i] = Float(x)
            }
        }
        if lowerOrderNums < solverOrder { lowerOrderNums += 1 }
        previousEstimate = estimate
        return SamplerStep(previous: previous, predictedOriginal: Tensor(validShape: sample.shape, scalars: estimate.map { Float($0) }))
    }
}
