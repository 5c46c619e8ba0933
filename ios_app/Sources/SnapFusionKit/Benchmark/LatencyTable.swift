import Foundation

/// The per-block latency table (docs/contracts.md section 4), read in Python by
/// `snapfusion_coreml.latency.table.load_latency_table` (architecture evolution, cost model).
public struct LatencyTable: Codable, Equatable, Sendable {
    public static let formatName = "snapfusion-latency-table"

    public var format = LatencyTable.formatName
    public var version = 1
    public var toolVersion: String
    /// false: measured on a device (true only for cost-model estimates).
    public var estimated: Bool
    public var device: Device
    public var layout: String
    public var imageSize: Int
    public var entries: [Entry]

    /// Where the table was measured.
    public struct Device: Codable, Equatable, Sendable {
        public var model: String
        public var os: String
        public var computeUnits: ComputeUnits
    }

    /// One block's latency; `index` counts blocks of its kind inside the stage.
    public struct Entry: Codable, Equatable, Sendable {
        public var stage: String
        public var index: Int
        public var kind: BlockKind
        public var resolution: Int
        public var channels: Int
        public var inChannels: Int
        public var batch: Int
        public var p50Ms: Double
        public var p95Ms: Double
    }
}
