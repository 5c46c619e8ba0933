import Foundation

/// A sampler for one generation: the UNet timesteps it asks for, the initial noise scale, the
/// model-input scaling and the update after each UNet call (docs/contracts.md section 3).
///
/// Samplers are values built from pipeline.json's `sampler` record (`SamplerName.makeSampler`);
/// the multistep ones (PNDM, DPM-Solver++) keep the previous model outputs in their own state,
/// so make one per generation and call `step` once per entry of `unetTimesteps`, in order.
/// Arithmetic is float64 on float32 tensors; results are rounded back to float32.
public protocol Sampler: Sendable {
    /// The UNet's `timestep` input, one per call, in order.
    var unetTimesteps: [Double] { get }
    /// Initial latents are `randn(shape) * initNoiseSigma`.
    var initNoiseSigma: Double { get }
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
