import Foundation

/// Settings of one benchmark.
public struct BenchmarkOptions: Equatable, Sendable {
    /// Waiting for the device to cool down before each measured run, so runs are compared at
    /// similar temperatures (a hot iPhone throttles the Neural Engine and GPU).
    public struct CoolDown: Codable, Equatable, Sendable {
        /// A fixed pause before each measured run, in seconds.
        public var pauseSeconds: Double
        /// Then wait until the thermal state is at most this (`ThermalState`; not `.unavailable`).
        public var maxThermalState: ThermalState
        /// The longest wait for the thermal state, in seconds; the run starts anyway after it
        /// (its `thermal_state` says how hot it was).
        public var maxWaitSeconds: Double

        /// Pause `pauseSeconds`, then wait up to `maxWaitSeconds` for `maxThermalState` or cooler.
        public init(pauseSeconds: Double, maxThermalState: ThermalState = .fair, maxWaitSeconds: Double = 300) {
            self.pauseSeconds = pauseSeconds
            self.maxThermalState = maxThermalState
            self.maxWaitSeconds = maxWaitSeconds
        }
    }

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
    /// Recorded in the report; the backend implements it (models loaded per stage, and those
    /// loads fall inside the stage times: the report says `stage_times_include_loads`).
    public var reduceMemory: Bool
    /// Recorded in the report as requested; the backend was created with it (what each model
    /// ran on is recorded per run when the backend reports it, `ComputeUnitReporting`).
    public var computeUnits: ComputeUnits
    /// The runtime of the folder's files (recorded in the report).
    public var runtime: FolderFormat = .coreML
    /// nil: measured runs follow each other at once.
    public var coolDown: CoolDown?
    /// How often the run's memory is sampled besides every stage boundary, in seconds (nil: at
    /// stage boundaries only).
    public var memorySampleInterval: Double?

    /// Defaults follow Apple's published methodology: one warm-up, then five measured runs.
    public init(prompt: String = "a photo of an astronaut riding a horse on mars", steps: Int? = nil,
                guidanceScale: Double? = nil, seed: UInt64 = 0, warmup: Int = 1, runs: Int = 5,
                reduceMemory: Bool = false, computeUnits: ComputeUnits = .cpuAndNeuralEngine,
                coolDown: CoolDown? = nil, memorySampleInterval: Double? = 0.005) {
        self.prompt = prompt
        self.steps = steps
        self.guidanceScale = guidanceScale
        self.seed = seed
        self.warmup = warmup
        self.runs = runs
        self.reduceMemory = reduceMemory
        self.computeUnits = computeUnits
        self.coolDown = coolDown
        self.memorySampleInterval = memorySampleInterval
    }
}
