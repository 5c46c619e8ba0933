import Foundation

/// A sampler for one generation: the UNet timesteps it asks for, the initial noise scale, the
/// model-input scaling and the update after each UNet call (docs/contracts.md section 3).
///
/// Samplers are values built from pipeline.json's `sampler` record (`SamplerName.makeSampler`);
/// the multistep ones (PNDM, DPM-Solver++) keep the previous model outputs in their own state,
/// so make one per generation and call `step` once per entry of `unetTimesteps`, in order, from
/// `beginIndex` on (image-to-image starts later: `setBeginIndex`, then `addNoise` at that index).
/// Arithmetic is float64 on float32 tensors; results are rounded back to float32.
public protocol Sampler: Sendable {
    /// The UNet's `timestep` input, one per call, in order.
    var unetTimesteps: [Double] { get }
    /// Initial latents are `randn(shape) * initNoiseSigma`.
    var initNoiseSigma: Double { get }
    /// The first call of this generation: 0, or the image-to-image start (`setBeginIndex`).
    var beginIndex: Int { get }
    /// Starts the generation at call `index` (diffusers' `set_begin_index`, which
    /// StableDiffusionImg2ImgPipeline calls with the strength's first step): calls run from
    /// `index` to the end with the record's lists indexed as in a whole run, and the multistep
    /// history starts empty there. Call it before the first `step`.
    /// - Throws: `SamplerError.stepOutOfRange` for an index outside `unetTimesteps`.
    mutating func setBeginIndex(_ index: Int) throws
    /// Image-to-image: the start latent at call `index` from the clean latent `original` and
    /// `noise` of its shape (diffusers' `add_noise` at `timesteps[index]`; not scaled by
    /// `initNoiseSigma`). Alpha samplers: `sqrt(ac[t]) x0 + sqrt(1 - ac[t]) e`; sigma samplers
    /// as their diffusers class.
    func addNoise(to original: Tensor, noise: Tensor, index: Int) throws -> Tensor
    /// The UNet input of call `index` for `sample` (identity unless the sampler scales it).
    func scaleModelInput(_ sample: Tensor, index: Int) -> Tensor
    /// Call `index`'s update from the (guided) model output. Noise, when the sampler adds any,
    /// is drawn from `random`, which continues the stream of the initial latents.
    mutating func step(index: Int, modelOutput: Tensor, sample: Tensor,
                       random: inout TorchRandomSource) throws -> SamplerStep
}

extension Sampler {
    public func scaleModelInput(_ sample: Tensor, index: Int) -> Tensor { sample }
}

/// The result of one sampler call.
public struct SamplerStep: Sendable {
    /// The latents the next call starts from (after the last call: the final latents).
    public var previous: Tensor
    /// The sampler's estimate of the final clean latents at this call (decoded for previews).
    public var predictedOriginal: Tensor
}

/// The samplers pipeline.json's `sampler.name` can select: the one place that maps a record to
/// its implementation.
public enum SamplerName: String, CaseIterable, Sendable {
    /// DDIMScheduler, eta 0.
    case ddim
    /// PNDMScheduler with skip_prk_steps (PLMS).
    case pndm
    /// DPMSolverMultistepScheduler, algorithm_type dpmsolver++.
    case dpmSolverPlusPlus = "dpmsolver++"
    /// EulerDiscreteScheduler.
    case euler
    /// EulerAncestralDiscreteScheduler.
    case eulerAncestral = "euler_ancestral"
    /// LCMScheduler.
    case lcm
    /// TCDScheduler.
    case tcd

    /// Samplers that step in sigma space and carry `sigmas` (one per call, then the final one).
    public var usesSigmas: Bool { [.dpmSolverPlusPlus, .euler, .eulerAncestral].contains(self) }

    /// Samplers that carry `previous_timesteps` (one per call).
    public var usesPreviousTimesteps: Bool { [.ddim, .pndm, .lcm, .tcd].contains(self) }

    /// "ddim, pndm, dpmsolver++, euler, euler_ancestral, lcm, tcd".
    public static var supportedList: String { allCases.map(\.rawValue).joined(separator: ", ") }

    /// The sampler of `record` for a model with `predictionType` on `schedule` (the record's
    /// lists are used as they are; `PipelineDescription.decode` has checked their lengths).
    public func makeSampler(record: PipelineDescription.Sampler, schedule: NoiseSchedule,
                            predictionType: PredictionType) throws -> any Sampler {
        let timesteps = record.timesteps
        func list<T>(_ value: T?, _ key: String) throws -> T {
            guard let value else { throw SamplerError.missingRecordKey(key, sampler: rawValue) }
            return value
        }
        func integers(_ values: [Double], _ key: String) throws -> [Int] {
            guard let bad = values.first(where: { $0 != $0.rounded() || $0 < 0 || Int($0) >= schedule.alphasCumprod.count }) else {
                return values.map { Int($0) }
            }
            throw SamplerError.invalidTimestep(bad, key: key, count: schedule.alphasCumprod.count)
        }
        switch self {
        case .ddim:
            return DDIMSampler(schedule: schedule, predictionType: predictionType, timesteps: try integers(timesteps, "timesteps"),
                               previousTimesteps: try list(record.previousTimesteps, "previous_timesteps"),
                               clipSample: record.clipSample)
        case .pndm:
            return PNDMSampler(schedule: schedule, predictionType: predictionType, timesteps: timesteps,
                               currentTimesteps: try list(record.currentTimesteps, "current_timesteps"),
                               previousTimesteps: try list(record.previousTimesteps, "previous_timesteps"))
        case .dpmSolverPlusPlus:
            return try DPMSolverMultistepSampler(predictionType: predictionType, timesteps: timesteps,
                                                 sigmas: try list(record.sigmas, "sigmas"),
                                                 solverOrder: record.solverOrder ?? 2,
                                                 solverType: record.solverType ?? "midpoint",
                                                 lowerOrderFinal: record.lowerOrderFinal ?? true,
                                                 eulerAtFinal: record.eulerAtFinal ?? false,
                                                 finalSigmasType: record.finalSigmasType ?? "zero")
        case .euler, .eulerAncestral:
            return EulerSampler(predictionType: predictionType, timesteps: timesteps, sigmas: try list(record.sigmas, "sigmas"),
                                initNoiseSigma: record.initNoiseSigma ?? 1, scalesModelInput: record.scaleModelInput ?? true,
                                ancestral: self == .eulerAncestral)
        case .lcm:
            return LCMSampler(schedule: schedule, predictionType: predictionType, timesteps: try integers(timesteps, "timesteps"),
                              previousTimesteps: try list(record.previousTimesteps, "previous_timesteps"),
                              timestepScaling: record.timestepScaling ?? 10, clipSample: record.clipSample)
        case .tcd:
            return TCDSampler(schedule: schedule, predictionType: predictionType, timesteps: try integers(timesteps, "timesteps"),
                              previousTimesteps: try list(record.previousTimesteps, "previous_timesteps"),
                              eta: record.eta ?? 0.3)
        }
    }
}

/// Image-to-image start latents, the formulas of diffusers' `add_noise` (docs/contracts.md,
/// image-to-image), float64 per element rounded back to float32.
enum NoiseAdding {
    /// DDIM, PNDM, LCM, TCD (DDPM's `add_noise`): `sqrt(ac[t]) x0 + sqrt(1 - ac[t]) e`.
    static func alpha(_ original: Tensor, _ noise: Tensor, schedule: NoiseSchedule, timestep t: Int) throws -> Tensor {
        let (a, s) = schedule.alphaSigma(at: t)
        return try combine(original, a, noise, s)
    }

    /// DPM-Solver++: `alpha_t x0 + sigma_t e`, `alpha_t = 1 / sqrt(sigma^2 + 1)`, `sigma_t = sigma alpha_t`.
    static func variancePreservingSigma(_ original: Tensor, _ noise: Tensor, sigma: Double) throws -> Tensor {
        let alpha = 1 / (sigma * sigma + 1).squareRoot()
        return try combine(original, alpha, noise, sigma * alpha)
    }

    /// Euler, Euler ancestral: `x0 + sigma e`.
    static func varianceExploding(_ original: Tensor, _ noise: Tensor, sigma: Double) throws -> Tensor {
        try combine(original, 1, noise, sigma)
    }

    /// `a x + b e` per element.
    private static func combine(_ x: Tensor, _ a: Double, _ e: Tensor, _ b: Double) throws -> Tensor {
        guard x.shape == e.shape else { throw TensorError.incompatibleShapes(x.shape, e.shape) }
        var out = x
        for i in out.scalars.indices { out.scalars[i] = Float(a * Double(x.scalars[i]) + b * Double(e.scalars[i])) }
        return out
    }

    /// Throws unless `index` is a call of a sampler with `count` calls.
    static func check(_ index: Int, count: Int) throws {
        guard index >= 0, index < count else { throw SamplerError.stepOutOfRange(index, count: count) }
    }
}

/// The model output of an alpha sampler as `(x, eps)` at `alpha = sqrt(ac[t])`, `sigma = sqrt(1 - ac[t])`
/// (docs/contracts.md section 3): v-prediction `x = a z - s v`, `eps = s z + a v`; epsilon
/// `eps = out`, `x = (z - s eps) / a`.
@inline(__always)
func estimates(_ out: Double, _ z: Double, alpha a: Double, sigma s: Double, _ type: PredictionType) -> (x: Double, eps: Double) {
    switch type {
    case .vPrediction: return (a * z - s * out, s * z + a * out)
    case .epsilon: return ((z - s * out) / a, out)
    }
}

/// Errors configuring or running a sampler.
public enum SamplerError: LocalizedError, Equatable {
    /// A step count outside 1...num_train_timesteps (format_version 1 spacing rules).
    case invalidStepCount(Int, maximum: Int)
    /// A v2 folder's lists were planned for one step count (`sampler.default_steps`).
    case stepsFixedByFolder(requested: Int, planned: Int)
    /// The record lacks a list the sampler needs.
    case missingRecordKey(String, sampler: String)
    /// An alpha sampler's timestep that is not a whole number below num_train_timesteps.
    case invalidTimestep(Double, key: String, count: Int)
    /// A sampler option SnapFusionKit does not implement (e.g. DPM-Solver++ order 3).
    case unsupportedOption(String, sampler: String)
    /// `step` was called more often than the sampler has timesteps, or out of order.
    case stepOutOfRange(Int, count: Int)

    public var errorDescription: String? {
        switch self {
        case let .invalidStepCount(steps, maximum):
            return "expected 1 <= steps <= \(maximum), got \(steps)"
        case let .stepsFixedByFolder(requested, planned):
            return "expected \(planned) steps, the count this folder's sampler lists were planned for, got \(requested) "
                + "(convert again with the step count you want)"
        case let .missingRecordKey(key, sampler):
            return "expected sampler.\(key) for sampler \(sampler), got none"
        case let .invalidTimestep(value, key, count):
            return "expected sampler.\(key) as integers in 0..<\(count), got \(value)"
        case let .unsupportedOption(option, sampler):
            return "expected a \(sampler) option SnapFusionKit implements, got \(option)"
        case let .stepOutOfRange(index, count):
            return "expected a sampler step index in 0..<\(count), got \(index)"
        }
    }
}
