import Foundation
import SnapFusionKit

/// State of the Benchmark screen: runs `BenchmarkRunner` on the shared pipeline (the same models
/// as the Generate screen) and keeps the JSON for sharing. Lives as long as the app.
@MainActor
final class BenchmarkModel: ObservableObject {
    @Published var prompt = "a photo of an astronaut riding a horse on mars"
    @Published var runs = 5
    @Published var warmup = 1
    @Published private(set) var isRunning = false
    @Published private(set) var log: [String] = []
    @Published private(set) var report: BenchmarkReport?
    @Published private(set) var fileURL: URL?
    @Published var error: String?

    private var token: CancellationToken?

    func run(store: ModelStore) {
        guard !isRunning else { return }
        let backend: CoreMLBackend
        let pipeline: Pipeline
        do {
            (pipeline, backend) = try store.pipeline()
        } catch {
            self.error = error.localizedDescription
            return
        }
        let options = BenchmarkOptions(prompt: prompt, seed: 0, warmup: warmup, runs: runs,
                                       reduceMemory: store.reduceMemory, computeUnits: store.computeUnits)
        let token = CancellationToken()
        self.token = token
        isRunning = true
        error = nil
        report = nil
        fileURL = nil
        log = ["Benchmarking \(options.runs) runs after \(options.warmup) warm-up on \(options.computeUnits)…"]
        Task.detached(priority: .userInitiated) { [weak self] in
            do {
                let runner = BenchmarkRunner(pipeline: pipeline, options: options)
                let report = try runner.run(cancellation: token) { line in
                    Task { @MainActor in self?.log.append(line) }
                }
                backend.unload()
                let url = FileManager.default.temporaryDirectory
                    .appendingPathComponent("snapfusion-benchmark-\(report.environment.deviceModel).json")
                try ReportCoding.write(report, to: url)
                await MainActor.run {
                    self?.report = report
                    self?.fileURL = url
                    self?.isRunning = false
                }
            } catch {
                backend.unload()
                await MainActor.run {
                    if (error as? PipelineError) != .cancelled { self?.error = error.localizedDescription }
                    self?.isRunning = false
                }
            }
        }
    }

    func cancel() {
        token?.cancel()
    }
}
