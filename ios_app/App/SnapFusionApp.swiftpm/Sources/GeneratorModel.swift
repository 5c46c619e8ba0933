import CoreGraphics
import Foundation
import ImageIO
import PhotosUI
import SnapFusionKit
import SwiftUI

/// State of the Generate screen: settings, progress with the pipeline's previews, the image (and
/// its PNG bytes, encoded once off the main thread) and its stage timings. Lives as long as the
/// app, so switching tabs never resets the settings.
@MainActor
final class GeneratorModel: ObservableObject {
    @Published var prompt = "a red circle on a blue background"  // the bundled default model's grammar
    /// What guidance steers away from (used only where guidance runs, w > 1, as in diffusers).
    @Published var negativePrompt = ""
    @Published var steps = 8
    /// Whether the folder's sampler can take another step count: format 1 (DDIM) folders replan
    /// in the app; format 2 folders carry the exact lists of their `default_steps` only.
    @Published private(set) var stepsAdjustable = true
    @Published var guidance = 7.5
    @Published var seed: UInt64 = 0
    /// Image-to-image: the starting image picked from Photos (nil: text-to-image).
    @Published private(set) var startingImage: CGImage?
    /// Image-to-image: the share of the schedule that runs (diffusers' strength).
    @Published var strength = GenerationRequest.defaultStrength
    /// Whether the folder has the VAE encoder that image-to-image needs.
    @Published private(set) var hasEncoder = false
    /// The folder's image sizes (pipeline.json `sizes`), the default first; empty for one size.
    @Published private(set) var sizes: [PipelineDescription.Size] = []
    /// The index in `sizes` to generate.
    @Published var sizeIndex = 0
    @Published private(set) var isRunning = false
    @Published private(set) var status = ""
    @Published private(set) var fraction = 0.0
    /// The pipeline's estimate of the final image while the UNet runs (every `previewEvery` steps).
    @Published private(set) var preview: CGImage?
    @Published private(set) var image: CGImage?
    /// The image as PNG, for saving to Files.
    @Published private(set) var png: Data?
    @Published private(set) var timings: StageTimings?
    @Published var error: String?

    /// Decode a preview every this many steps (each costs one decoder call).
    private let previewEvery = 2
    private var task: Task<Void, Never>?
    /// Counts generations, so a cancelled one that ends late does not touch its successor.
    private var generation = 0
    /// The folder whose defaults (steps, guidance) were applied; they are applied once per folder.
    private var adoptedFolder: URL?

    /// Applies the folder's default steps and guidance the first time a folder is seen.
    func adopt(_ description: PipelineDescription?, folder: URL?) {
        guard let description, folder != adoptedFolder else { return }
        adoptedFolder = folder
        steps = description.sampler.defaultSteps
        stepsAdjustable = description.formatVersion == 1
        guidance = description.guidance.defaultScale
        hasEncoder = description.components.encoder != nil
        sizes = description.sizes ?? []
        sizeIndex = 0
    }

    /// Loads the photo picked in Photos as the starting image: oriented as shown in Photos and
    /// at most 2048 px on its longer side (the pipeline crops and resizes it to the model's size).
    func pickStartingImage(_ item: PhotosPickerItem?) {
        guard let item else { return }
        Task { [weak self] in
            do {
                guard let data = try await item.loadTransferable(type: Data.self) else { throw StartingImageError.unreadable }
                let image = try await Task.detached(priority: .userInitiated) { try GeneratorModel.decodeImage(data) }.value
                self?.startingImage = image
            } catch {
                self?.error = error.localizedDescription
            }
        }
    }

    /// Back to text-to-image.
    func clearStartingImage() {
        startingImage = nil
    }

    nonisolated static func decodeImage(_ data: Data) throws -> CGImage {
        let options: [CFString: Any] = [kCGImageSourceCreateThumbnailFromImageAlways: true,
                                        kCGImageSourceCreateThumbnailWithTransform: true,
                                        kCGImageSourceThumbnailMaxPixelSize: 2048]
        guard let source = CGImageSourceCreateWithData(data as CFData, nil),
              let image = CGImageSourceCreateThumbnailAtIndex(source, 0, options as CFDictionary) else {
            throw StartingImageError.unreadable
        }
        return image
    }

    func generate(store: ModelStore) {
        guard !isRunning else { return }
        guard store.begin(.generating) else {
            error = store.busyMessage
            return
        }
        var settings = GenerationRequest(prompt: prompt, negativePrompt: negativePrompt, steps: steps, guidanceScale: guidance,
                                         seed: seed)
        if sizes.indices.contains(sizeIndex) { settings.imageSize = sizes[sizeIndex].image }
        let startingImage = self.startingImage
        if startingImage != nil { settings.strength = strength }
        let baseRequest = settings
        isRunning = true
        error = nil
        fraction = 0
        preview = nil
        status = "Loading models (the first launch compiles them; later loads are fast)…"
        generation += 1
        let id = generation
        let previewEvery = self.previewEvery
        task = Task { [weak self] in
            defer { store.end(.generating) }
            do {
                // 1. the shared pipeline (built off the main actor), prepare (Core ML's asynchronous
                //    compiler, or Core AI's specialization) and load, off the main thread
                let shared = try await store.pipeline()
                try await shared.backend.prepare()
                try Task.checkCancellation()
                try await Task.detached(priority: .userInitiated) { try shared.backend.load() }.value
                try Task.checkCancellation()
                // image-to-image: the starting image's pixels, drawn off the main thread
                var request = baseRequest
                if let startingImage {
                    request.initImage = try await Task.detached(priority: .userInitiated) { try RGBImage(cgImage: startingImage) }.value
                }
                // 2. generate, following the progress stream and its previews
                let run = shared.pipeline.start(request, previewEvery: previewEvery)
                let result = try await withTaskCancellationHandler {
                    for await progress in run.progress { self?.show(progress, id: id) }
                    return try await run.result
                } onCancel: {
                    run.cancel()
                }
                // 3. the CGImage and its PNG, once, off the main thread
                let (image, png) = try await Task.detached(priority: .userInitiated) { () throws -> (CGImage, Data) in
                    let image = try result.cgImage()
                    return (image, PNGDocument.encode(image))
                }.value
                guard let self, self.generation == id else { return }
                self.image = image
                self.png = png
                self.timings = result.timings
                self.finish(error: nil)
            } catch {
                guard let self, self.generation == id else { return }
                self.finish(error: error)
            }
        }
    }

    /// Stops at once: loading or the current step is abandoned, the screen is ready again.
    func cancel() {
        task?.cancel()
        task = nil
        generation += 1
        finish(error: nil)
    }

    private func show(_ progress: GenerationProgress, id: Int) {
        guard isRunning, generation == id else { return }
        switch progress.stage {
        case .textEncoder: status = "Encoding the prompt…"
        case .imageEncoder: status = "Encoding the starting image…"
        case .unet: status = "Step \(progress.step) of \(progress.totalSteps)"
        case .decoder, .done: status = "Decoding…"
        }
        fraction = Double(progress.step) / Double(max(progress.totalSteps, 1))
        // A preview is a small RGBA image (the model's size); converting it here is cheap.
        if let pixels = progress.preview, let image = pixels.cgImage { preview = image }
    }

    private func finish(error: Error?) {
        isRunning = false
        status = ""
        preview = nil
        if let error, !(error is CancellationError), (error as? PipelineError) != .cancelled {
            self.error = error.localizedDescription
        }
    }
}

/// A photo that could not be read as an image.
enum StartingImageError: LocalizedError {
    case unreadable

    var errorDescription: String? {
        switch self {
        case .unreadable: return "Could not read the picked photo as an image."
        }
    }
}
