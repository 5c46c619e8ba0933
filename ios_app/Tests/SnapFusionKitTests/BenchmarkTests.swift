import Foundation
import Testing
@testable import SnapFusionKit

/// Single-block fake: every prediction costs a fixed, block-dependent time on the fake clock.
final class FakeBlockBackend: BlockBackend {
    let clock: FakeClock
    private(set) var loaded: [String] = []

    init(clock: FakeClock) { self.clock = clock }

    func loadBlock(_ block: BlocksManifest.Block, at url: URL) throws -> BlockPredictor {
        loaded.append(url.lastPathComponent)
        // Cost grows with the work: channels^2 x resolution^2, plus a fixed attention cost.
        let cost = Double(block.channels * block.channels * block.resolution * block.resolution) / 1e8 * Double(block.batch)
            + (block.kind == .transformer ? 0.5 : 0.1)
        return Predictor(clock: clock, cost: cost)
    }

    final class Predictor: BlockPredictor {
        let clock: FakeClock
        let cost: Double
        var calls = 0

        init(clock: FakeClock, cost: Double) {
            self.clock = clock
            self.cost = cost
        }

        func predict() throws {
            calls += 1
            clock.advance(cost * (calls % 5 == 0 ? 1.2 : 1.0))  // every fifth call is slower
        }
    }
}

@Suite struct BenchmarkTests {
    static let goldenSwift = GoldenFiles.golden.appendingPathComponent("swift")

    @Test(arguments: [
        ([1.0], 1.0, 1.0),
        ([3.0, 1.0, 2.0], 2.0, 2.9),
        ([10, 20, 30, 40], 25.0, 38.5),
        ([1, 2, 3, 4, 5, 6, 7, 8, 9, 100], 5.5, 59.04999999999994),
    ])
    func percentilesMatchNumpy(values: [Double], p50: Double, p95: Double) {
        let stats = Statistics(values)
        #expect(stats.p50 == p50)
        #expect(abs(stats.p95 - p95) <= 1e-12 * max(1, abs(p95)))
    }

    @Test func highWaterMarkParses() {
        #expect(ProcessMemoryProbe.parseHighWaterMark("Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t 1 kB") == 2_097_152)
        #expect(ProcessMemoryProbe.parseHighWaterMark("Name:\tx") == nil)
        #expect(ProcessMemoryProbe.parseKilobytes("VmHWM:\t  2048 kB\nVmRSS:\t 1 kB", field: "VmRSS:") == 1024)
        let probe = ProcessMemoryProbe()
        let (current, peak) = (probe.currentBytes() ?? 0, probe.peakBytes() ?? 0)
        #expect(current > 0 && peak >= current)
    }

    @Test func systemInfoIsFilled() {
        #expect(!SystemInfo.deviceModel.isEmpty && SystemInfo.deviceModel != "unknown")
        #expect(!SystemInfo.operatingSystem.isEmpty)
        #expect(SystemInfo.timestamp(Date(timeIntervalSince1970: 0)) == "1970-01-01T00:00:00Z")
    }

    static func fakePipeline(_ backend: FakeBackend, clock: FakeClock,
                             recovery: Pipeline.NonFiniteRecovery = .fail) throws -> Pipeline {
        let description = try PipelineDescription.decode(try ModelFolder.json(named: "valid"))
        return Pipeline(description: description, tokenizer: try CLIPTokenizer(directory: GoldenFiles.tokenizerDirectory),
                        backend: backend, clock: clock, nonFiniteRecovery: recovery)
    }

    /// A benchmark of the fake backend on a fake clock: every number is known in advance.
    static func fakeReport(jitter: Bool = false) throws -> BenchmarkReport {
        let clock = FakeClock()
        let backend = FakeBackend(clock: clock)
        backend.jitter = jitter
        let pipeline = try fakePipeline(backend, clock: clock)
        let options = BenchmarkOptions(prompt: "a photo of an astronaut", seed: 0, warmup: 1, runs: jitter ? 5 : 3,
                                       computeUnits: .cpuAndNeuralEngine, memorySampleInterval: nil)
        let memory = FakeMemoryProbe(step: jitter ? 3_000_000 : 0)
        var report = try BenchmarkRunner(pipeline: pipeline, options: options, memory: memory,
                                         thermal: FakeThermalProbe(.nominal)).run()
        report.environment.date = "2026-01-01T00:00:00Z"
        report.environment.buildConfiguration = "release"
        #expect(backend.loads == 2 && backend.unloads == 2)
        return report
    }

    @Test func runnerMeasuresEveryStage() throws {
        let report = try Self.fakeReport()
        #expect(report.version == 2)
        #expect(report.load.coldMs == 1200 && report.load.warmMs == 120)
        #expect(report.runs.count == 3)
        for run in report.runs {
            #expect(run.textEncoderMs == 8)
            #expect(run.unetStepMs == [Double](repeating: 230, count: 8))
            #expect(run.decoderMs == 116)
            #expect(run.endToEndMs == 1964)
            #expect(run.peakMemoryBytes == 1_200_000_000)
            #expect(run.thermalState == .init(start: .nominal, end: .nominal))
            #expect(run.coolDownMs == nil)
            #expect(run.computeUnits == .init(textEncoder: .cpuAndNeuralEngine, unet: .cpuAndNeuralEngine, decoder: .cpuAndNeuralEngine))
        }
        #expect(report.summary.unetStepMs == Statistics([Double](repeating: 230, count: 24)))
        #expect(report.summary.endToEndMs.p95 == 1964)
        #expect(report.config.steps == 8 && report.config.unetBatch == 2 && report.config.guidanceScale == 7.5)
        #expect(report.config.stageTimesIncludeLoads == false && report.config.coolDown == nil)
        #expect(report.models.unet == String(repeating: "2", count: 64))
    }

    /// The models were loaded (a generation ran first): the cold load is still a real load,
    /// measured after releasing them, not the no-op of loading what is loaded.
    @Test func coldLoadIsMeasuredAfterUnload() throws {
        let clock = FakeClock()
        let backend = FakeBackend(clock: clock)
        let pipeline = try Self.fakePipeline(backend, clock: clock)
        try backend.load()
        _ = try pipeline.generate(GenerationRequest(prompt: "a red circle", seed: 1))
        let options = BenchmarkOptions(warmup: 0, runs: 1, memorySampleInterval: nil)
        let report = try BenchmarkRunner(pipeline: pipeline, options: options, memory: FakeMemoryProbe(),
                                         thermal: FakeThermalProbe(.nominal)).run()
        #expect(report.load.coldMs == 120 && report.load.warmMs == 120)
        #expect(backend.loads == 3)
    }

    /// Each run reports the largest footprint sampled during it, not the process's peak so far:
    /// a smaller second run reports less than the first.
    @Test func peakMemoryIsPerRun() throws {
        let clock = FakeClock()
        let pipeline = try Self.fakePipeline(FakeBackend(clock: clock), clock: clock)
        // 13 samples per run: start, text encoder, 8 UNet steps, before decoding, done, stop
        let first: [Int64] = [1_000, 1_100, 1_500] + [Int64](repeating: 1_200, count: 10)
        let second: [Int64] = [900, 1_300] + [Int64](repeating: 1_000, count: 11)
        let memory = FakeMemoryProbe(readings: first + second)
        let options = BenchmarkOptions(warmup: 0, runs: 2, memorySampleInterval: nil)
        let report = try BenchmarkRunner(pipeline: pipeline, options: options, memory: memory,
                                         thermal: FakeThermalProbe(.nominal)).run()
        #expect(memory.count == 26)
        #expect(report.runs.map(\.peakMemoryBytes) == [1_500, 1_300])
        #expect(report.memory == .init(sampleIntervalMs: nil, processPeakBytes: 1_500))
    }

    /// With background sampling, a spike between stage boundaries is seen too.
    @Test func backgroundSamplingCatchesSpikesInsideAStage() throws {
        let memory = FakeMemoryProbe(step: 1)
        let sampler = PeakMemorySampler(probe: memory, interval: 0.001)
        Thread.sleep(forTimeInterval: 0.05)
        let peak = try #require(sampler.stop())
        #expect(memory.count > 3)  // start and stop alone would be 2
        #expect(peak == 1_200_000_000 + Int64(memory.count) - 1)
    }

    /// The cool-down pauses, then waits (one-second steps) until the device is at most `fair`;
    /// each run records its wait and its thermal state at start and end.
    @Test func coolDownWaitsForTheThermalState() throws {
        let clock = FakeClock()
        let pipeline = try Self.fakePipeline(FakeBackend(clock: clock), clock: clock)
        let thermal = FakeThermalProbe(.critical)
        var sleeps: [Double] = []
        let sleep: (Double) -> Void = { seconds in
            sleeps.append(seconds)
            clock.advance(seconds * 1000)
            if seconds == 1 { thermal.cool() }
        }
        let options = BenchmarkOptions(warmup: 0, runs: 2, coolDown: .init(pauseSeconds: 5, maxThermalState: .fair),
                                       memorySampleInterval: nil)
        let runner = BenchmarkRunner(pipeline: pipeline, options: options, memory: FakeMemoryProbe(), thermal: thermal,
                                     sleep: sleep)
        let report = try runner.run()
        #expect(sleeps == [5, 1, 1, 5])  // critical -> serious -> fair, then the second run pauses only
        #expect(report.runs.map(\.coolDownMs) == [7000, 5000])
        #expect(report.runs.map(\.thermalState) == [.init(start: .fair, end: .fair), .init(start: .fair, end: .fair)])
        #expect(report.config.coolDown == .init(pauseSeconds: 5, maxThermalState: .fair, maxWaitSeconds: 300))

        // A device that stays hot: the run starts after the longest wait, and says how hot it was.
        let hot = FakeThermalProbe(.serious)
        let patient = BenchmarkRunner(pipeline: pipeline,
                                      options: .init(warmup: 0, runs: 1, coolDown: .init(pauseSeconds: 0, maxThermalState: .nominal,
                                                                                         maxWaitSeconds: 2.5),
                                                     memorySampleInterval: nil),
                                      memory: FakeMemoryProbe(), thermal: hot, sleep: { clock.advance($0 * 1000) })
        let run = try #require(try patient.run().runs.first)
        #expect(run.coolDownMs == 2500 && run.thermalState?.start == .serious)
    }

    /// After NaN on the Neural Engine the UNet moves to the GPU: the run says so.
    @Test func computeUnitsAreThoseUsed() throws {
        let clock = FakeClock()
        let backend = FakeBackend(clock: clock)
        backend.poisoned = [.unet: 1]
        backend.canFallBack = true
        let pipeline = try Self.fakePipeline(backend, clock: clock, recovery: .retryOnCPUAndGPU)
        let report = try BenchmarkRunner(pipeline: pipeline, options: .init(warmup: 0, runs: 1, memorySampleInterval: nil),
                                         memory: FakeMemoryProbe(), thermal: FakeThermalProbe(.nominal)).run()
        #expect(report.environment.computeUnits == .cpuAndNeuralEngine)
        #expect(report.runs[0].computeUnits == .init(textEncoder: .cpuAndNeuralEngine, unet: .cpuAndGPU, decoder: .cpuAndNeuralEngine))
    }

    /// Reduce-memory mode loads inside the stages; the report says the stage times include loads.
    @Test func reduceMemoryRecordsThatStagesIncludeLoads() throws {
        let clock = FakeClock()
        let pipeline = try Self.fakePipeline(FakeBackend(clock: clock), clock: clock)
        let report = try BenchmarkRunner(pipeline: pipeline, options: .init(warmup: 0, runs: 1, reduceMemory: true,
                                                                            memorySampleInterval: nil),
                                         memory: FakeMemoryProbe(), thermal: FakeThermalProbe(.nominal)).run()
        #expect(report.config.reduceMemory && report.config.stageTimesIncludeLoads == true)
    }

    /// The interpreter backend (over the in-memory server) is benchmarked the same way; it
    /// does not report compute units, so runs leave them out.
    @Test func interpreterBackendBenchmarks() throws {
        let description = try PipelineDescription.decode(try ModelFolder.json(named: "valid"))
        let server = FakeInterpreterServer()
        let pipeline = Pipeline(description: description, tokenizer: try CLIPTokenizer(directory: GoldenFiles.tokenizerDirectory),
                                backend: InterpreterBackend(description: description, channel: server))
        let report = try BenchmarkRunner(pipeline: pipeline, options: .init(warmup: 0, runs: 2, memorySampleInterval: 0.001),
                                         thermal: FakeThermalProbe(.fair)).run()
        #expect(report.runs.count == 2 && report.runs.allSatisfy { $0.unetStepMs.count == 8 && $0.peakMemoryBytes > 0 })
        #expect(report.runs.allSatisfy { $0.computeUnits == nil && $0.thermalState == .init(start: .fair, end: .fair) })
        #expect(server.requests.filter { $0.component == "unet" }.count == 16)
        #expect((report.memory?.processPeakBytes ?? 0) >= report.runs.map(\.peakMemoryBytes).max()!)
    }

    /// A Core AI folder's benchmark says so; reports without `runtime` (before Core AI) still decode.
    @Test func runtimeIsRecorded() throws {
        let clock = FakeClock()
        let pipeline = try Self.fakePipeline(FakeBackend(clock: clock), clock: clock)
        var options = BenchmarkOptions(warmup: 0, runs: 1, computeUnits: .all, memorySampleInterval: nil)
        options.runtime = .coreAI
        let report = try BenchmarkRunner(pipeline: pipeline, options: options, memory: FakeMemoryProbe(),
                                         thermal: FakeThermalProbe(.nominal)).run()
        #expect(report.environment.runtime == "coreai" && report.environment.computeUnits == .all)
        var object = try #require(try JSONSerialization.jsonObject(with: ReportCoding.encoder().encode(report)) as? [String: Any])
        var environment = try #require(object["environment"] as? [String: Any])
        environment["runtime"] = nil
        object["environment"] = environment
        let older = try ReportCoding.decoder().decode(BenchmarkReport.self, from: try JSONSerialization.data(withJSONObject: object))
        #expect(older.environment.runtime == nil)
    }

    /// Version 1 files (no thermal state, compute units used or memory method) still decode.
    @Test func versionOneReportsStillDecode() throws {
        var object = try #require(try JSONSerialization.jsonObject(with: ReportCoding.encoder().encode(try Self.fakeReport()))
                                  as? [String: Any])
        object["version"] = 1
        object["memory"] = nil
        var runs = try #require(object["runs"] as? [[String: Any]])
        for index in runs.indices { ["thermal_state", "compute_units", "cool_down_ms"].forEach { runs[index][$0] = nil } }
        object["runs"] = runs
        let report = try ReportCoding.decoder().decode(BenchmarkReport.self, from: try JSONSerialization.data(withJSONObject: object))
        #expect(report.version == 1 && report.runs.count == 3 && report.runs[0].thermalState == nil && report.memory == nil)
    }

    @Test func reportUsesContractKeys() throws {
        let data = try ReportCoding.encoder().encode(try Self.fakeReport())
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(object["format"] as? String == "snapfusion-benchmark")
        #expect(object["version"] as? Int == 2)
        #expect(Set(object.keys) == ["format", "version", "environment", "models", "config", "load", "runs", "summary", "memory"])
        let run = try #require((object["runs"] as? [[String: Any]])?.first)
        #expect(Set(run.keys) == ["text_encoder_ms", "unet_step_ms", "decoder_ms", "end_to_end_ms", "peak_memory_bytes",
                                  "thermal_state", "compute_units"])
        #expect(Set(try #require(run["compute_units"] as? [String: Any]).keys) == ["text_encoder", "unet", "decoder"])
        #expect(Set(try #require(run["thermal_state"] as? [String: Any]).keys) == ["start", "end"])
        let environment = try #require(object["environment"] as? [String: Any])
        #expect(Set(environment.keys) == ["host", "device_model", "os", "compute_units", "runtime", "tool_version", "date",
                                          "build_configuration"])
        #expect(environment["runtime"] as? String == "coreml")
        let config = try #require(object["config"] as? [String: Any])
        #expect(config["stage_times_include_loads"] as? Bool == false)
        #expect(Set(try #require(object["models"] as? [String: Any]).keys) == ["text_encoder", "unet", "decoder"])
        #expect(Set(try #require(object["memory"] as? [String: Any]).keys) == ["process_peak_bytes"])
    }

    static func blockFolder() throws -> URL {
        let folder = try GoldenFiles.temporaryFolder()
        let blocks: [[String: Any]] = [
            ("down_blocks.1", 0, "resnet", 32, 640, 320), ("down_blocks.1", 0, "transformer", 32, 640, 640),
            ("mid_block", 0, "resnet", 8, 1280, 1280), ("up_blocks.1", 2, "transformer", 16, 1280, 1280),
        ].map { stage, index, kind, resolution, channels, inChannels in
            let group = kind == "resnet" ? "resnets" : "attentions"
            var inputs: [[String: Any]] = [["name": "hidden_states", "shape": [2, inChannels, resolution, resolution], "dtype": "float32"]]
            inputs.append(kind == "resnet" ? ["name": "temb", "shape": [2, 1280], "dtype": "float32"]
                                           : ["name": "encoder_hidden_states", "shape": [2, 768, 1, 77], "dtype": "float32"])
            return ["stage": stage, "index": index, "kind": kind, "resolution": resolution, "channels": channels,
                    "in_channels": inChannels, "batch": 2, "package": "\(stage).\(group).\(index).mlpackage", "inputs": inputs,
                    "outputs": [["name": "output", "shape": [2, channels, resolution, resolution], "dtype": "float32"]]]
        }
        let manifest: [String: Any] = ["format": "snapfusion-block-manifest", "version": 1, "layout": "snapfusion",
                                       "image_size": 512, "blocks": blocks]
        try JSONSerialization.data(withJSONObject: manifest).write(to: folder.appendingPathComponent("manifest.json"))
        for block in blocks {
            try FileManager.default.createDirectory(at: folder.appendingPathComponent(block["package"] as! String),
                                                    withIntermediateDirectories: true)
        }
        return folder
    }

    static func fakeTable() throws -> LatencyTable {
        let clock = FakeClock()
        let backend = FakeBlockBackend(clock: clock)
        return try LatencyTableRunner(backend: backend, computeUnits: .cpuAndNeuralEngine, warmup: 2, runs: 10, clock: clock)
            .run(folder: try blockFolder())
    }

    @Test func latencyTableTimesEveryBlock() throws {
        let table = try Self.fakeTable()
        #expect(table.entries.map { "\($0.stage).\($0.kind).\($0.index)" } ==
                ["down_blocks.1.resnet.0", "down_blocks.1.transformer.0", "mid_block.resnet.0", "up_blocks.1.transformer.2"])
        let first = try #require(table.entries.first)
        let base = 640.0 * 640 * 32 * 32 / 1e8 * 2 + 0.1
        #expect(abs(first.p50Ms - base) < 1e-9)
        #expect(first.p95Ms > first.p50Ms)
        #expect(first.inChannels == 320 && first.batch == 2 && !table.estimated)
    }

    @Test func missingBlockPackageIsNamed() throws {
        let folder = try Self.blockFolder()
        try FileManager.default.removeItem(at: folder.appendingPathComponent("mid_block.resnets.0.mlpackage"))
        #expect(throws: BenchmarkError.missingBlockPackage("mid_block.resnets.0.mlpackage", folder.path)) {
            try BlocksManifest.load(from: folder)
        }
    }

    /// tests/golden/blocks_manifests.json, read by the Python contract tests too
    /// (tests/test_pipeline_json.py): the valid sample decodes, every other one is refused.
    @Test func goldenBlocksManifests() throws {
        let data = try Data(contentsOf: GoldenFiles.golden.appendingPathComponent("blocks_manifests.json"))
        let cases = try #require((try JSONSerialization.jsonObject(with: data) as? [String: Any])?["cases"] as? [[String: Any]])
        #expect(cases.count >= 5)
        for item in cases {
            let name = try #require(item["name"] as? String)
            let json = try JSONSerialization.data(withJSONObject: try #require(item["manifest"]))
            if item["expect"] as? String == "ok" {
                let blocksManifest = try BlocksManifest.decode(json, source: name)
                #expect(blocksManifest.blocks.map { "\($0.stage).\($0.kind.moduleGroup).\($0.index)" }
                        == ["down_blocks.0.resnets.0", "down_blocks.1.attentions.0"])
                #expect(blocksManifest.blocks.map(\.kind) == [.resnet, .transformer])
                #expect(blocksManifest.blocks[0].inputs[0].shape == [2, 32, 8, 12])
            } else {
                #expect(throws: BenchmarkError.self, "\(name) should be refused") { try BlocksManifest.decode(json, source: name) }
            }
        }
    }

    /// tests/golden/swift/*.json are written by this code and read by the Python tests
    /// (tests/test_golden_swift_outputs.py). SNAPFUSION_WRITE_GOLDEN=1 rewrites them.
    @Test func goldenOutputsForPython() throws {
        let benchmarkURL = Self.goldenSwift.appendingPathComponent("benchmark.json")
        let tableURL = Self.goldenSwift.appendingPathComponent("latency_table.json")
        if ProcessInfo.processInfo.environment["SNAPFUSION_WRITE_GOLDEN"] == "1" {
            try FileManager.default.createDirectory(at: Self.goldenSwift, withIntermediateDirectories: true)
            try ReportCoding.write(try Self.fakeReport(jitter: true), to: benchmarkURL)
            try ReportCoding.write(try Self.fakeTable(), to: tableURL)
        }
        let report = try ReportCoding.decoder().decode(BenchmarkReport.self, from: Data(contentsOf: benchmarkURL))
        let expected = try Self.fakeReport(jitter: true)
        #expect(report.summary.unetStepMs.p95 > report.summary.unetStepMs.p50)
        #expect(report.runs == expected.runs && report.summary == expected.summary && report.load == expected.load)
        let table = try ReportCoding.decoder().decode(LatencyTable.self, from: Data(contentsOf: tableURL))
        #expect(table.entries == (try Self.fakeTable()).entries)
    }
}
