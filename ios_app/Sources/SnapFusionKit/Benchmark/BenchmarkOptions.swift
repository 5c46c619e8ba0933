import Foundation

/// Settings of one benchmark.
public struct BenchmarkOptions: Equatable, Sendable {
    public var prompt: String
    /// nil: pipeline.json's default.
    public var steps: Int?
    /// nil: pipeline.json's default.
    public var guidanceScale: Double?
    public var seed: UInt64
    /// Unmeasured generations before the measured ones.
    public var warmup: Int
    /// Measured generations.
    public var runs: Int
    /// Recorded in the report; the backend implements it (models loaded per stage).
    public var reduceMemory: Bool
    /// Recorded in the report; the backend was created with it.
    public var computeUnits: ComputeUnits

    /// Defaults follow Apple's published methodology: one warm-up, then five measured runs.
    public init(prompt: String = "a photo of an astronaut riding a horse on mars", steps: Int? = nil,
                guidanceScale: Double? = nil, seed: UInt64 = 0, warmup: Int = 1, runs: Int = 5,
                reduceMemory: Bool = false, computeUnits: ComputeUnits = .cpuAndNeuralEngine) {
        self.prompt = prompt
        self.steps = steps
        self.guidanceScale = guidanceScale
        self.seed = seed
        self.warmup = warmup
        self.runs = runs
        self.reduceMemory = reduceMemory
        self.computeUnits = computeUnits
    }
}
