import Foundation

/// Measures a pipeline: cold load, warm load, then `warmup` unmeasured and `runs` measured
/// generations (text encoder, every UNet step, decoder, end to end, peak memory), and writes
/// docs/contracts.md section 6. Backend-agnostic: anything behind `DiffusionBackend` can be timed.
public final class BenchmarkRunner {
    public let pipeline: Pipeline
    public let options: BenchmarkOptions
    private let memory: MemoryProbe

    /// A runner over `pipeline`, whose backend should not be loaded yet (for a true cold load).
    public init(pipeline: Pipeline, options: BenchmarkOptions, memory: MemoryProbe = ProcessMemoryProbe()) {
        self.pipeline = pipeline
        self.options = options
        self.memory = memory
    }

    /// Runs the benchmark. `log` receives one human-readable line per phase.
    public func run(cancellation: CancellationToken? = nil, log: ((String) -> Void)? = nil) throws -> BenchmarkReport {
        guard options.runs >= 1, options.warmup >= 0 else { throw BenchmarkError.invalidRunCount(options.runs, options.warmup) }
        let backend = pipeline.backend
        let clock = pipeline.clock

        // 1. load: first in this process (cold), then again after unloading (warm)
        let (_, coldMs) = try clock.measure { try backend.load() }
        log?(String(format: "cold load %.1f ms", coldMs))
        backend.unload()
        let (_, warmMs) = try clock.measure { try backend.load() }
        log?(String(format: "warm load %.1f ms", warmMs))

        // 2. warm-up, then measured runs
        let request = GenerationRequest(prompt: options.prompt, steps: options.steps,
                                        guidanceScale: options.guidanceScale, seed: options.seed)
        for index in 0..<options.warmup {
            _ = try pipeline.generate(request, cancellation: cancellation)
            log?("warm-up \(index + 1)/\(options.warmup) done")
        }
        var runs: [BenchmarkReport.Run] = []
        for index in 0..<options.runs {
            let timings = try pipeline.generate(request, cancellation: cancellation).timings
            let run = BenchmarkReport.Run(textEncoderMs: timings.textEncoderMs, unetStepMs: timings.unetStepMs,
                                          decoderMs: timings.decoderMs, endToEndMs: timings.endToEndMs,
                                          peakMemoryBytes: memory.peakBytes() ?? 0)
            runs.append(run)
            log?(String(format: "run %d/%d: end to end %.1f ms", index + 1, options.runs, run.endToEndMs))
        }

        // 3. report
        let description = pipeline.description
        return BenchmarkReport(
            environment: .init(host: "device", deviceModel: SystemInfo.deviceModel, os: SystemInfo.operatingSystem,
                               computeUnits: options.computeUnits, toolVersion: SnapFusionKitVersion.string,
                               date: SystemInfo.timestamp()),
            models: .init(textEncoder: description.components.textEncoder?.sha256, unet: description.components.unet?.sha256,
                          decoder: description.components.decoder?.sha256),
            config: .init(steps: options.steps ?? description.sampler.defaultSteps,
                          guidanceScale: options.guidanceScale ?? description.guidance.defaultScale,
                          imageSize: max(description.imageHeight, description.imageWidth), unetBatch: description.guidance.unetBatch,
                          prompt: options.prompt, seed: options.seed, warmup: options.warmup, runs: options.runs,
                          reduceMemory: options.reduceMemory),
            load: .init(coldMs: coldMs, warmMs: warmMs),
            runs: runs,
            summary: .init(runs: runs))
    }
}
