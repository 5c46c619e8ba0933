import Foundation

/// The benchmark result JSON (docs/contracts.md section 6), read by `snapfusion-coreml report`.
/// Keys are written in snake_case; all times are milliseconds.
public struct BenchmarkReport: Codable, Equatable, Sendable {
    public static let formatName = "snapfusion-benchmark"

    public var format = BenchmarkReport.formatName
    public var version = 1
    public var environment: Environment
    /// sha256 of each component, from pipeline.json.
    public var models: Models
    public var config: Configuration
    public var load: Load
    public var runs: [Run]
    public var summary: Summary

    /// Where the benchmark ran.
    public struct Environment: Codable, Equatable, Sendable {
        /// "device" for runs of this harness (iPhone, iPad or Mac); Python host benchmarks write "host".
        public var host: String
        /// `hw.machine` on iOS ("iPhone15,2"), `hw.model` on macOS ("Mac14,2"), `uname` on Linux.
        public var deviceModel: String
        public var os: String
        public var computeUnits: ComputeUnits
        public var toolVersion: String
        /// ISO 8601, UTC.
        public var date: String
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
    }

    /// Model loading: the first load of the process (compiling on first use, device
    /// specialization) and a second load after unloading.
    public struct Load: Codable, Equatable, Sendable {
        public var coldMs: Double
        public var warmMs: Double
    }

    /// One measured generation.
    public struct Run: Codable, Equatable, Sendable {
        public var textEncoderMs: Double
        public var unetStepMs: [Double]
        public var decoderMs: Double
        /// Tokenization to decoded image, loading excluded.
        public var endToEndMs: Double
        /// The process's peak physical footprint observed by the end of this run.
        public var peakMemoryBytes: Int64
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
