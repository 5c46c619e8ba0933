import CoreGraphics
import Foundation
import SnapFusionKit

/// State of the Generate screen: settings, progress, the image and its stage timings.
@MainActor
final class GeneratorModel: ObservableObject {
    @Published var prompt = "a red circle on a blue background"  // the bundled default model's grammar
    @Published var steps = 8
    @Published var guidance = 7.5
    @Published var seed: UInt64 = 0
    @Published private(set) var isRunning = false
    @Published private(set) var status = ""
    @Published private(set) var fraction = 0.0
    @Published private(set) var image: CGImage?
    @Published private(set) var timings: StageTimings?
    @Published var error: String?

    private var token: CancellationToken?
    /// Reused while folder and settings stay the same, so models load once.
    private var pipeline: Pipeline?
    private var pipelineKey: String?

    /// Applies the folder's defaults (steps, guidance).
    func adopt(_ description: PipelineDescription?) {
        guard let description else { return }
        steps = description.sampler.defaultSteps
        guidance = description.guidance.defaultScale
    }

    func generate(store: ModelStore) {
        guard !isRunning else { return }
        let key = "\(store.folder?.path ?? "")|\(store.computeUnits.rawValue)|\(store.reduceMemory)"
        let request = GenerationRequest(prompt: prompt, steps: steps, guidanceScale: guidance, seed: seed)
        let token = CancellationToken()
        self.token = token
        isRunning = true
        error = nil
        fraction = 0
        do {
            if pipeline == nil || pipelineKey != key, let folder = store.folder {
                pipeline = try Pipeline(folder: folder, backend: try store.makeBackend())
                pipelineKey = key
            }
        } catch {
            finish(error: error)
            return
        }
        guard let pipeline else {
            finish(error: AppError.noModel)
            return
        }
        status = "Loading models (the first load compiles them; later loads are fast)…"
        Task.detached(priority: .userInitiated) { [weak self] in
            do {
                try pipeline.backend.load()
                let result = try pipeline.generate(request, cancellation: token) { progress in
                    Task { @MainActor in self?.show(progress) }
                }
                let image = try result.cgImage()
                await MainActor.run {
                    self?.image = image
                    self?.timings = result.timings
                    self?.finish(error: nil)
                }
            } catch {
                await MainActor.run { self?.finish(error: error) }
            }
        }
    }

    func cancel() {
        token?.cancel()
        status = "Cancelling…"
    }

    private func show(_ progress: GenerationProgress) {
        guard isRunning else { return }
        switch progress.stage {
        case .textEncoder: status = "Encoding the prompt…"
        case .unet: status = "Step \(progress.step) of \(progress.totalSteps)"
        case .decoder, .done: status = "Decoding…"
        }
        fraction = Double(progress.step) / Double(max(progress.totalSteps, 1))
    }

    private func finish(error: Error?) {
        isRunning = false
        token = nil
        status = ""
        if let error, (error as? PipelineError) != .cancelled {
            self.error = error.localizedDescription
        }
    }
}
