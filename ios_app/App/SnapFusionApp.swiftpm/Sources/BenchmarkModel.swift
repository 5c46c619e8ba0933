import Foundation
import SnapFusionKit

/// State of the Benchmark screen: runs `BenchmarkRunner` on the shared pipeline (the same models
/// as the Generate screen, which waits meanwhile) and keeps the JSON for sharing. Lives as long
/// as the app.
@MainActor
final class BenchmarkModel: ObservableObject {
    @Published var prompt = "a photo of an astronaut riding a horse on mars"
    @Published var runs = 5
    @Published var warmup = 1
    /// Seconds to pause before each measured run (then wait until the device is at most `fair`);
    /// 0: no cool-down.
    @Published var coolDownSeconds = 0
    @Published private(set) var isRunning = false
    @Published private(set) var log: [String] = []
    @Published private(set) var report: BenchmarkReport?
    @Published private(set) var fileURL: URL?
    @Published var error: String?

    private var token: CancellationToken?

    func run(store: ModelStore) {
        guard !isRunning else { return }
        guard store.begin(.benchmarking) else {
            error = store.busyMessage
            return
        }
        var options = BenchmarkOptions(prompt: prompt, seed: 0, warmup: warmup, runs: runs, reduceMemory: store.reduceMemory)
        if coolDownSeconds > 0 { options.coolDown = .init(pauseSeconds: Double(coolDownSeconds)) }
        let token = CancellationToken()
        self.token = token
        isRunning = true
        error = nil
        report = nil
        fileURL = nil
        log = ["Preparing the models…"]
        let requested = options
        Task { [weak self] in
            defer { store.end(.benchmarking) }
            var options = requested
            do {
                let (pipeline, backend) = try await store.pipeline()
                options.computeUnits = (backend as? CoreMLBackend)?.computeUnits ?? .all  // Core AI places work itself
                options.runtime = try store.folderFormat()
                self?.log = ["Benchmarking \(options.runs) runs after \(options.warmup) warm-up on \(options.computeUnits)…"]
                let measured = options
                let (report, url) = try await Task.detached(priority: .userInitiated) { () throws -> (BenchmarkReport, URL) in
                    let runner = BenchmarkRunner(pipeline: pipeline, options: measured)
                    let report = try runner.run(cancellation: token) { line in
                        Task { @MainActor in self?.log.append(line) }
                    }
                    let url = FileManager.default.temporaryDirectory
                        .appendingPathComponent("snapfusion-benchmark-\(report.environment.deviceModel).json")
                    try ReportCoding.write(report, to: url)
                    return (report, url)
                }.value
                self?.report = report
                self?.fileURL = url
                self?.isRunning = false
            } catch {
                if (error as? PipelineError) != .cancelled { self?.error = error.localizedDescription }
                self?.isRunning = false
            }
        }
    }

    func cancel() {
        token?.cancel()
    }
}
