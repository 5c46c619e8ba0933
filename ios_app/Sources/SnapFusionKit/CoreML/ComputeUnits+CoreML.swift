#if canImport(CoreML)
import CoreML

extension ComputeUnits {
    /// The Core ML value.
    public var mlComputeUnits: MLComputeUnits {
        switch self {
        case .cpuOnly: return .cpuOnly
        case .cpuAndGPU: return .cpuAndGPU
        case .cpuAndNeuralEngine: return .cpuAndNeuralEngine
        case .all: return .all
        }
    }

    /// The value of a Core ML setting (nil for a case this version does not know).
    public init?(_ units: MLComputeUnits) {
        switch units {
        case .cpuOnly: self = .cpuOnly
        case .cpuAndGPU: self = .cpuAndGPU
        case .cpuAndNeuralEngine: self = .cpuAndNeuralEngine
        case .all: self = .all
        @unknown default: return nil
        }
    }
}
#endif
