import Foundation

/// The benchmark result JSON (docs/contracts.md section 6), read by `snapfusion-coreml report`.
/// Keys are written in snake_case; all times are milliseconds. Version 2 adds what makes runs
/// comparable (thermal state, cool-down, per-run memory peak, compute units used, build
/// configuration); the fields it adds are optional here, so version 1 files still decode.
public struct BenchmarkReport: Codable, Equatable, Sendable {
    public static let formatName = "snapfusion-benchmark"
    public static let currentVersion = 2

    public var format = BenchmarkReport.formatName
    public var version = BenchmarkReport.currentVersion
    public var environment: Environment
    /// sha256 of each component, from pipeline.json.
    public var models: Models
    public var config: Configuration
    public var load: Load
    public var runs: [Run]
    public var summary: Summary
    /// How memory was measured (version 2).
    public var memory: Memory?

    /// Where the benchmark ran.
    public struct Environment: Codable, Equatable, Sendable {
        /// "device" for runs of this harness (iPhone, iPad or Mac); Python host benchmarks write "host".
        public var host: String
        /// `hw.machine` on iOS ("iPhone15,2"), `hw.model` on macOS ("Mac14,2"), `uname` on Linux.
        public var deviceModel: String
        public var os: String
        /// What the backend was asked for; `Run.computeUnits` says what each model ran on.
        /// Core AI places work itself: its reports record the default request, `.all`.
        public var computeUnits: ComputeUnits
        /// The runtime that ran the folder: "coreml" or "coreai" (pipeline.json's component
        /// `format`); absent in reports written before Core AI (read as "coreml").
        public var runtime: String?
        public var toolVersion: String
        /// ISO 8601, UTC.
        public var date: String
        /// "release" or "debug" (`SystemInfo.buildConfiguration`; version 2).
        public var buildConfiguration: String?
    }

    public struct Models: Codable, Equatable, Sendable {
        public var textEncoder: String?
        public var unet: String?
        public var decoder: String?
    }

    /// What was run.
    public struct Configuration: Codable, Equatable, Sendable {
        public var steps: Int
        public var guidanceScale: Double
        /// The longer image side in pixels (`image_size` of docs/contracts.md section 6).
        public var imageSize: Int
        public var unetBatch: Int
        public var prompt: String
        public var seed: UInt64
        public var warmup: Int
        public var runs: Int
        public var reduceMemory: Bool
        /// Whether the stage times include model loads: true in reduce-memory mode, where the
        /// UNet and decoder are loaded inside their stages (version 2).
        public var stageTimesIncludeLoads: Bool?
        /// The cool-down before each measured run, if any (version 2).
        public var coolDown: BenchmarkOptions.CoolDown?
    }

    /// Model loading, both measured after releasing every model: cold is the first load of the
    /// benchmark (compiling when the cache is empty; in a fresh process also the device's first
    /// specialization), warm the load after unloading again.
    public struct Load: Codable, Equatable, Sendable {
        public var coldMs: Double
        public var warmMs: Double
    }

    /// One measured generation.
    public struct Run: Codable, Equatable, Sendable {
        public var textEncoderMs: Double
        public var unetStepMs: [Double]
        public var decoderMs: Double
        /// Tokenization to decoded image, loading excluded (except in reduce-memory mode).
        public var endToEndMs: Double
        /// The largest physical footprint sampled during this run (version 2; version 1: the
        /// process's peak so far, which never goes down).
        public var peakMemoryBytes: Int64
        /// The thermal state when the run started and when it ended (version 2).
        public var thermalState: ThermalRange?
        /// How long the cool-down before this run waited (version 2, with a cool-down).
        public var coolDownMs: Double?
        /// The compute units each model ran on by the end of the run (version 2, when the
        /// backend reports them).
        public var computeUnits: ComputeUnitsUsed?

        public init(textEncoderMs: Double, unetStepMs: [Double], decoderMs: Double, endToEndMs: Double,
                    peakMemoryBytes: Int64, thermalState: ThermalRange? = nil, coolDownMs: Double? = nil,
                    computeUnits: ComputeUnitsUsed? = nil) {
            self.textEncoderMs = textEncoderMs
            self.unetStepMs = unetStepMs
            self.decoderMs = decoderMs
            self.endToEndMs = endToEndMs
            self.peakMemoryBytes = peakMemoryBytes
            self.thermalState = thermalState
            self.coolDownMs = coolDownMs
            self.computeUnits = computeUnits
        }
    }

    /// The thermal state at the start and the end of a run.
    public struct ThermalRange: Codable, Equatable, Sendable {
        public var start: ThermalState
        public var end: ThermalState
    }

    /// What each component ran on.
    public struct ComputeUnitsUsed: Codable, Equatable, Sendable {
        public var textEncoder: ComputeUnits?
        public var unet: ComputeUnits?
        public var decoder: ComputeUnits?
    }

    /// How `peak_memory_bytes` was taken.
    public struct Memory: Codable, Equatable, Sendable {
        /// The interval of the background sampling in milliseconds (nil: stage boundaries only).
        public var sampleIntervalMs: Double?
        /// The process's peak footprint since launch, at the end of the benchmark (loads and
        /// earlier work of the app included).
        public var processPeakBytes: Int64?
    }

    /// Mean, p50 and p95 over the runs (`unet_step_ms`: over every step of every run).
    public struct Summary: Codable, Equatable, Sendable {
        public var textEncoderMs: Statistics
        public var unetStepMs: Statistics
        public var decoderMs: Statistics
        public var endToEndMs: Statistics
        public var peakMemoryBytes: Statistics

        /// The summary of `runs`.
        public init(runs: [Run]) {
            textEncoderMs = Statistics(runs.map(\.textEncoderMs))
            unetStepMs = Statistics(runs.flatMap(\.unetStepMs))
            decoderMs = Statistics(runs.map(\.decoderMs))
            endToEndMs = Statistics(runs.map(\.endToEndMs))
            peakMemoryBytes = Statistics(runs.map { Double($0.peakMemoryBytes) })
        }
    }
}
