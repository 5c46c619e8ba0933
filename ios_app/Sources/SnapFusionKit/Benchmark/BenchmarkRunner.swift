import Foundation

/// Measures a pipeline: cold load, warm load, then `warmup` unmeasured and `runs` measured
/// generations (text encoder, every UNet step, decoder, end to end, the run's peak memory, the
/// thermal state and the compute units used), and writes docs/contracts.md section 6.
/// Backend-agnostic: anything behind `DiffusionBackend` can be timed.
///
/// Nothing else may use the pipeline's models while it runs (the sample app disables Generate
/// during a benchmark): another generation would change every number.
public final class BenchmarkRunner {
    public let pipeline: Pipeline
    public let options: BenchmarkOptions
    private let memory: any MemoryProbe
    private let thermal: any ThermalProbe
    private let sleep: (Double) -> Void

    /// A runner over `pipeline`. The models are released before the cold load is measured, so
    /// they may be loaded already.
    ///
    /// - Parameters:
    ///   - memory: the process's memory (sampled during each run).
    ///   - thermal: the device's thermal state (recorded per run, waited on by the cool-down).
    ///   - sleep: waits the given seconds (the cool-down; injectable for tests).
    public init(pipeline: Pipeline, options: BenchmarkOptions, memory: any MemoryProbe = ProcessMemoryProbe(),
                thermal: any ThermalProbe = SystemThermalProbe(),
                sleep: @escaping (Double) -> Void = { Thread.sleep(forTimeInterval: $0) }) {
        self.pipeline = pipeline
        self.options = options
        self.memory = memory
        self.thermal = thermal
        self.sleep = sleep
    }

    /// Runs the benchmark. `log` receives one human-readable line per phase.
    public func run(cancellation: CancellationToken? = nil, log: ((String) -> Void)? = nil) throws -> BenchmarkReport {
        guard options.runs >= 1, options.warmup >= 0 else { throw BenchmarkError.invalidRunCount(options.runs, options.warmup) }
        let backend = pipeline.backend
        let clock = pipeline.clock

        // 1. load after releasing everything (cold: the first load of the benchmark), then again (warm)
        backend.unload()
        let (_, coldMs) = try clock.measure { try backend.load() }
        log?(String(format: "cold load %.1f ms", coldMs))
        backend.unload()
        let (_, warmMs) = try clock.measure { try backend.load() }
        log?(String(format: "warm load %.1f ms", warmMs))

        // 2. warm-up, then measured runs, each after the cool-down
        let request = GenerationRequest(prompt: options.prompt, steps: options.steps,
                                        guidanceScale: options.guidanceScale, seed: options.seed)
        for index in 0..<options.warmup {
            _ = try pipeline.generate(request, cancellation: cancellation)
            log?("warm-up \(index + 1)/\(options.warmup) done")
        }
        var runs: [BenchmarkReport.Run] = []
        for index in 0..<options.runs {
            let coolDownMs = try options.coolDown.map { try coolDown($0, cancellation: cancellation, log: log) }
            let start = thermal.state()
            let sampler = PeakMemorySampler(probe: memory, interval: options.memorySampleInterval)
            let timings: StageTimings
            do {
                timings = try pipeline.generate(request, cancellation: cancellation) { _ in sampler.sample() }.timings
            } catch {
                _ = sampler.stop()
                throw error
            }
            let peak = sampler.stop()
            let run = BenchmarkReport.Run(textEncoderMs: timings.textEncoderMs, unetStepMs: timings.unetStepMs,
                                          decoderMs: timings.decoderMs, endToEndMs: timings.endToEndMs,
                                          peakMemoryBytes: peak ?? 0,
                                          thermalState: .init(start: start, end: thermal.state()),
                                          coolDownMs: coolDownMs, computeUnits: computeUnitsUsed())
            runs.append(run)
            log?(String(format: "run %d/%d: end to end %.1f ms, thermal state %@", index + 1, options.runs, run.endToEndMs,
                        run.thermalState?.end.rawValue ?? "-"))
        }

        // 3. report
        let description = pipeline.description
        return BenchmarkReport(
            environment: .init(host: "device", deviceModel: SystemInfo.deviceModel, os: SystemInfo.operatingSystem,
                               computeUnits: options.computeUnits, runtime: options.runtime.rawValue,
                               toolVersion: SnapFusionKitVersion.string, date: SystemInfo.timestamp(),
                               buildConfiguration: SystemInfo.buildConfiguration),
            models: .init(textEncoder: description.components.textEncoder?.sha256, unet: description.components.unet?.sha256,
                          decoder: description.components.decoder?.sha256),
            config: .init(steps: options.steps ?? description.sampler.defaultSteps,
                          guidanceScale: options.guidanceScale ?? description.guidance.defaultScale,
                          imageSize: max(description.imageHeight, description.imageWidth), unetBatch: description.guidance.unetBatch,
                          prompt: options.prompt, seed: options.seed, warmup: options.warmup, runs: options.runs,
                          reduceMemory: options.reduceMemory, stageTimesIncludeLoads: options.reduceMemory,
                          coolDown: options.coolDown),
            load: .init(coldMs: coldMs, warmMs: warmMs),
            runs: runs,
            summary: .init(runs: runs),
            memory: .init(sampleIntervalMs: options.memorySampleInterval.map { $0 * 1000 }, processPeakBytes: memory.peakBytes()))
    }

    /// Pauses, then waits until the thermal state is at most `coolDown.maxThermalState` (or the
    /// longest wait passed). Returns the milliseconds waited.
    private func coolDown(_ coolDown: BenchmarkOptions.CoolDown, cancellation: CancellationToken?,
                          log: ((String) -> Void)?) throws -> Double {
        let clock = pipeline.clock
        let start = clock.now()
        func check() throws {
            if cancellation?.isCancelled == true || Task.isCancelled { throw PipelineError.cancelled }
        }
        try check()
        if coolDown.pauseSeconds > 0 { sleep(coolDown.pauseSeconds) }
        var waited = 0.0
        while thermal.state() > coolDown.maxThermalState, waited < coolDown.maxWaitSeconds {
            try check()
            let step = min(1, coolDown.maxWaitSeconds - waited)
            sleep(step)
            waited += step
        }
        let elapsed = clock.now() - start
        if waited > 0 { log?(String(format: "cooled down %.0f s (thermal state %@)", elapsed / 1000, thermal.state().rawValue)) }
        return elapsed
    }

    private func computeUnitsUsed() -> BenchmarkReport.ComputeUnitsUsed? {
        guard let reporting = pipeline.backend as? any ComputeUnitReporting else { return nil }
        return .init(textEncoder: reporting.computeUnitsInUse(.textEncoder), unet: reporting.computeUnitsInUse(.unet),
                     decoder: reporting.computeUnitsInUse(.decoder))
    }
}

/// The largest physical footprint during one run: sampled when it starts, at every call of
/// `sample()` (the runner calls it at every stage boundary), every `interval` seconds on a
/// background thread, and when it stops.
final class PeakMemorySampler: @unchecked Sendable {
    private let probe: any MemoryProbe
    private let condition = NSCondition()
    private var peak: Int64?
    private var running = false
    private var threadActive = false

    /// Starts sampling at once.
    init(probe: any MemoryProbe, interval: Double?) {
        self.probe = probe
        sample()
        guard let interval, interval > 0 else { return }
        (running, threadActive) = (true, true)
        Thread.detachNewThread { [self] in loop(interval) }
    }

    /// Takes one sample now.
    func sample() {
        guard let bytes = probe.currentBytes() else { return }
        condition.lock()
        peak = max(peak ?? bytes, bytes)
        condition.unlock()
    }

    /// Takes a last sample, ends the background sampling and returns the largest sample.
    func stop() -> Int64? {
        sample()
        condition.lock()
        defer { condition.unlock() }
        running = false
        condition.broadcast()
        while threadActive { condition.wait() }
        return peak
    }

    private func loop(_ interval: Double) {
        condition.lock()
        while running {
            condition.unlock()
            sample()
            condition.lock()
            if running { _ = condition.wait(until: Date(timeIntervalSinceNow: interval)) }
        }
        threadActive = false
        condition.broadcast()
        condition.unlock()
    }
}
