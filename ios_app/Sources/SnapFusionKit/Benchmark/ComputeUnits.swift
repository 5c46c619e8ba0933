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
