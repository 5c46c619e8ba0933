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
        #expect((ProcessMemoryProbe().peakBytes() ?? 0) > 0)
    }

    @Test func systemInfoIsFilled() {
        #expect(!SystemInfo.deviceModel.isEmpty && SystemInfo.deviceModel != "unknown")
        #expect(!SystemInfo.operatingSystem.isEmpty)
        #expect(SystemInfo.timestamp(Date(timeIntervalSince1970: 0)) == "1970-01-01T00:00:00Z")
    }

    /// A benchmark of the fake backend on a fake clock: every number is known in advance.
    static func fakeReport(jitter: Bool = false) throws -> BenchmarkReport {
        let clock = FakeClock()
        let backend = FakeBackend(clock: clock)
        backend.jitter = jitter
        let description = try PipelineDescription.decode(try ModelFolder.json(named: "valid"))
        let pipeline = Pipeline(description: description, tokenizer: try CLIPTokenizer(directory: GoldenFiles.tokenizerDirectory),
                                backend: backend, clock: clock)
        let options = BenchmarkOptions(prompt: "a photo of an astronaut", seed: 0, warmup: 1, runs: jitter ? 5 : 3,
                                       computeUnits: .cpuAndNeuralEngine)
        let memory = FakeMemoryProbe(step: jitter ? 3_000_000 : 0)
        var report = try BenchmarkRunner(pipeline: pipeline, options: options, memory: memory).run()
        report.environment.date = "2026-01-01T00:00:00Z"
        #expect(backend.loads == 2 && backend.unloads == 1)
        return report
    }

    @Test func runnerMeasuresEveryStage() throws {
        let report = try Self.fakeReport()
        #expect(report.load.coldMs == 1200 && report.load.warmMs == 120)
        #expect(report.runs.count == 3)
        for run in report.runs {
            #expect(run.textEncoderMs == 8)
            #expect(run.unetStepMs == [Double](repeating: 230, count: 8))
            #expect(run.decoderMs == 116)
            #expect(run.endToEndMs == 1964)
            #expect(run.peakMemoryBytes == 1_200_000_000)
        }
        #expect(report.summary.unetStepMs == Statistics([Double](repeating: 230, count: 24)))
        #expect(report.summary.endToEndMs.p95 == 1964)
        #expect(report.config.steps == 8 && report.config.unetBatch == 2 && report.config.guidanceScale == 7.5)
        #expect(report.models.unet == String(repeating: "2", count: 64))
    }

    @Test func reportUsesContractKeys() throws {
        let data = try ReportCoding.encoder().encode(try Self.fakeReport())
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(object["format"] as? String == "snapfusion-benchmark")
        #expect(Set(object.keys) == ["format", "version", "environment", "models", "config", "load", "runs", "summary"])
        let run = try #require((object["runs"] as? [[String: Any]])?.first)
        #expect(Set(run.keys) == ["text_encoder_ms", "unet_step_ms", "decoder_ms", "end_to_end_ms", "peak_memory_bytes"])
        let environment = try #require(object["environment"] as? [String: Any])
        #expect(Set(environment.keys) == ["host", "device_model", "os", "compute_units", "tool_version", "date"])
        #expect(Set(try #require(object["models"] as? [String: Any]).keys) == ["text_encoder", "unet", "decoder"])
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
