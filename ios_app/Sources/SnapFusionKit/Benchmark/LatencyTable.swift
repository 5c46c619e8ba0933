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

    public struct Device: Codable, Equatable, Sendable {
        public var model: String
        public var os: String
        public var computeUnits: String
    }

    /// One block's latency; `index` counts blocks of its kind inside the stage.
    public struct Entry: Codable, Equatable, Sendable {
        public var stage: String
        public var index: Int
        public var kind: String
        public var resolution: Int
        public var channels: Int
        public var inChannels: Int
        public var batch: Int
        public var p50Ms: Double
        public var p95Ms: Double
    }
}

/// The block manifest of `snapfusion-coreml export-blocks` (docs/contracts.md section 5).
public struct BlockManifest: Codable, Equatable, Sendable {
    public static let formatName = "snapfusion-block-manifest"
    /// The manifest's file name inside the exported folder.
    public static let fileName = "manifest.json"

    public var format: String
    public var version: Int
    public var layout: String
    public var imageSize: Int
    public var blocks: [Block]

    /// One single-block Core ML package.
    public struct Block: Codable, Equatable, Sendable {
        public var stage: String
        public var index: Int
        /// "resnet" or "transformer".
        public var kind: String
        public var resolution: Int
        public var channels: Int
        public var inChannels: Int
        public var batch: Int
        /// Package file name inside the exported folder.
        public var package: String
        public var inputs: [PipelineDescription.TensorDescription]
        public var outputs: [PipelineDescription.TensorDescription]
    }

    /// Reads `folder/manifest.json` and checks every package exists.
    public static func load(from folder: URL) throws -> BlockManifest {
        let url = folder.appendingPathComponent(fileName)
        guard FileManager.default.fileExists(atPath: url.path) else { throw BenchmarkError.missingManifest(folder.path) }
        let manifest: BlockManifest
        do {
            manifest = try ReportCoding.decoder().decode(BlockManifest.self, from: Data(contentsOf: url))
        } catch {
            throw BenchmarkError.malformedManifest(url.path, String(describing: error))
        }
        guard manifest.format == formatName, manifest.version == 1 else {
            throw BenchmarkError.malformedManifest(url.path, "expected format \(formatName) version 1, got \(manifest.format) version \(manifest.version)")
        }
        if let bad = manifest.blocks.first(where: { $0.kind != "resnet" && $0.kind != "transformer" }) {
            throw BenchmarkError.malformedManifest(url.path, "expected block kind resnet or transformer, got \(bad.kind)")
        }
        for block in manifest.blocks where !FileManager.default.fileExists(atPath: folder.appendingPathComponent(block.package).path) {
            throw BenchmarkError.missingBlockPackage(block.package, folder.path)
        }
        return manifest
    }
}
