import Foundation

/// The blocks manifest (`manifest.json`) of `snapfusion-coreml export-blocks` (docs/contracts.md
/// section 5). The Python twin is snapfusion_coreml/contracts/blocks_manifest.py (`BlocksManifest`); both
/// read tests/golden/blocks_manifests.json.
public struct BlocksManifest: Codable, Equatable, Sendable {
    public static let formatName = "snapfusion-block-manifest"
    public static let supportedVersion = 1
    /// The blocks manifest's file name inside the exported folder.
    public static let fileName = "manifest.json"

    public var format: String
    public var version: Int
    public var layout: String
    /// The image height in pixels (its side for square images).
    public var imageSize: Int
    public var blocks: [Block]

    /// One single-block Core ML package.
    public struct Block: Codable, Equatable, Sendable {
        public var stage: String
        public var index: Int
        public var kind: BlockKind
        /// The latent height the block runs at; the declared shapes carry both sides.
        public var resolution: Int
        public var channels: Int
        public var inChannels: Int
        public var batch: Int
        /// Package file name inside the exported folder.
        public var package: String
        public var inputs: [PipelineDescription.TensorDescription]
        public var outputs: [PipelineDescription.TensorDescription]
    }

    /// Decodes and checks blocks manifest bytes; `source` names the file in errors.
    public static func decode(_ data: Data, source: String = fileName) throws -> BlocksManifest {
        let blocksManifest: BlocksManifest
        do {
            blocksManifest = try ReportCoding.decoder().decode(BlocksManifest.self, from: data)
        } catch {
            throw BenchmarkError.malformedBlocksManifest(source, String(describing: error))
        }
        guard blocksManifest.format == formatName, blocksManifest.version == supportedVersion else {
            throw BenchmarkError.malformedBlocksManifest(source, "expected format \(formatName) version \(supportedVersion), "
                                                                 + "got \(blocksManifest.format) version \(blocksManifest.version)")
        }
        return blocksManifest
    }

    /// Reads `folder/manifest.json` and checks every package exists.
    public static func load(from folder: URL) throws -> BlocksManifest {
        let url = folder.appendingPathComponent(fileName)
        guard FileManager.default.fileExists(atPath: url.path) else { throw BenchmarkError.missingBlocksManifest(folder.path) }
        let blocksManifest = try decode(try Data(contentsOf: url), source: url.path)
        for block in blocksManifest.blocks where !FileManager.default.fileExists(atPath: folder.appendingPathComponent(block.package).path) {
            throw BenchmarkError.missingBlockPackage(block.package, folder.path)
        }
        return blocksManifest
    }
}
