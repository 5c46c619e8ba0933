import Foundation

/// Times every block of an exported blocks manifest and builds the latency table: per block, load,
/// `warmup` unmeasured predictions, `runs` measured ones, p50/p95, then release.
public final class LatencyTableRunner {
    public let backend: BlockBackend
    public let clock: MillisecondClock
    public let warmup: Int
    public let runs: Int
    public let computeUnits: ComputeUnits

    /// A runner; defaults give stable percentiles for sub-millisecond blocks.
    public init(backend: BlockBackend, computeUnits: ComputeUnits, warmup: Int = 3, runs: Int = 20,
                clock: MillisecondClock = MonotonicClock()) {
        self.backend = backend
        self.computeUnits = computeUnits
        self.warmup = warmup
        self.runs = runs
        self.clock = clock
    }

    /// Measures every block in `folder` (written by `snapfusion-coreml export-blocks`).
    public func run(folder: URL, cancellation: CancellationToken? = nil, log: ((String) -> Void)? = nil) throws -> LatencyTable {
        guard runs >= 1, warmup >= 0 else { throw BenchmarkError.invalidRunCount(runs, warmup) }
        let blocksManifest = try BlocksManifest.load(from: folder)
        var entries: [LatencyTable.Entry] = []
        for (number, block) in blocksManifest.blocks.enumerated() {
            if cancellation?.isCancelled == true || Task.isCancelled { throw PipelineError.cancelled }
            let times: [Double] = try autoreleasing {
                let predictor = try backend.loadBlock(block, at: folder.appendingPathComponent(block.package))
                for _ in 0..<warmup { try predictor.predict() }
                return try (0..<runs).map { _ in try clock.measure { try predictor.predict() }.1 }
            }
            let stats = Statistics(times)
            entries.append(.init(stage: block.stage, index: block.index, kind: block.kind, resolution: block.resolution,
                                 channels: block.channels, inChannels: block.inChannels, batch: block.batch,
                                 p50Ms: stats.p50, p95Ms: stats.p95))
            log?("[\(number + 1)/\(blocksManifest.blocks.count)] \(block.package) p50 " + String(format: "%.3f ms", stats.p50))
        }
        return LatencyTable(toolVersion: SnapFusionKitVersion.string, estimated: false,
                            device: .init(model: SystemInfo.deviceModel, os: SystemInfo.operatingSystem, computeUnits: computeUnits),
                            layout: blocksManifest.layout, imageSize: blocksManifest.imageSize, entries: entries)
    }
}

/// Runs `body` inside an autorelease pool where one exists, so each block's model is freed
/// before the next is loaded.
func autoreleasing<T>(_ body: () throws -> T) rethrows -> T {
    #if canImport(ObjectiveC)
    return try autoreleasepool(invoking: body)
    #else
    return try body()
    #endif
}
