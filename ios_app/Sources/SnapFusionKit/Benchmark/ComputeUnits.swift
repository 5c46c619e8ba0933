/// Which processors Core ML may use; the raw values are `MLComputeUnits`' case names, as
/// written into benchmark and latency-table JSON.
public enum ComputeUnits: String, CaseIterable, Codable, Sendable {
    case cpuOnly
    case cpuAndGPU
    case cpuAndNeuralEngine
    case all

    /// Parses a command-line or JSON name (case-insensitive; "ane" and "gpu" accepted).
    public init?(argument: String) {
        switch argument.lowercased() {
        case "cpuonly", "cpu": self = .cpuOnly
        case "cpuandgpu", "gpu": self = .cpuAndGPU
        case "cpuandneuralengine", "ane", "neuralengine": self = .cpuAndNeuralEngine
        case "all": self = .all
        default: return nil
        }
    }
}

/// A backend that can say which compute units each component runs on now, so a benchmark
/// records what was used rather than what was asked for (a component moves to `.cpuAndGPU`
/// after NaN on the Neural Engine, `ComputeUnitFallback`).
public protocol ComputeUnitReporting: AnyObject {
    /// The compute units `component` runs on now; nil when unknown.
    func computeUnitsInUse(_ component: PipelineDescription.ComponentName) -> ComputeUnits?
}
