import Foundation
import Testing
@testable import SnapFusionKit

/// Image-to-image and several sizes on fake backends: the checks before any model runs, the
/// begin index, the size's latent shape, and which package function each backend call names.
@Suite struct ImageToImagePipelineTests {
    /// A `components.encoder` record for images of `height` x `width` (latent / 8).
    static func encoderComponent(height: Int, width: Int) -> PipelineDescription.Component {
        .init(file: "VAEEncoder.mlpackage", sha256: String(repeating: "4", count: 64),
              inputs: [.init(name: "z", shape: [1, 3, height, width], dtype: "float32")],
              outputs: [.init(name: "latent", shape: [1, 8, height / 8, width / 8], dtype: "float32")])
    }

    /// The valid sample (64x64, DDIM, 8 trailing steps) as format 3, with an encoder and, when
    /// `sizes`, the sizes 64x64 (default) and 64x96.
    static func description(encoder: Bool = true, sizes: Bool = false) throws -> PipelineDescription {
        var description = try PipelineDescription.decode(try ModelFolder.json(named: "valid"))
        description.formatVersion = 3  // a DDIM record of format 2 and later: with previous_timesteps
        description.sampler.previousTimesteps = Array(description.sampler.timesteps.dropFirst().map { Int($0) }) + [-1]
        if encoder { description.components.encoder = encoderComponent(height: 64, width: 64) }
        if sizes {
            description.sizes = [.init(function: "image_64x64", image: .init(height: 64, width: 64), latent: .init(height: 8, width: 8)),
                                 .init(function: "image_64x96", image: .init(height: 64, width: 96), latent: .init(height: 8, width: 12))]
        }
        return description
    }

    static func pipeline(_ description: PipelineDescription, _ backend: any DiffusionBackend) throws -> Pipeline {
        Pipeline(description: description, tokenizer: try PipelineTests.tokenizer.get(), backend: backend)
    }

    static func image(width: Int = 64, height: Int = 64) throws -> RGBImage {
        try RGBImage(width: width, height: height, bytes: (0..<(width * height * 3)).map { UInt8(($0 * 7) % 256) })
    }

    @Test(arguments: [(8, 0.8, 2), (8, 1.0, 0), (8, 0.5, 4), (8, 0.13, 7), (10, 0.6, 4), (4, 0.75, 1), (6, 0.67, 2)])
    func beginIndexIsDiffusersGetTimesteps(steps: Int, strength: Double, begin: Int) throws {
        #expect(try ImageToImage.beginIndex(steps: steps, strength: strength) == begin)
    }

    @Test func badStrengthsAndNoStepsLeftAreRefused() {
        for strength in [0, -0.1, 1.01] {
            #expect(throws: PipelineError.strengthOutOfRange(strength)) { try ImageToImage.beginIndex(steps: 8, strength: strength) }
        }
        #expect(throws: PipelineError.self) { try ImageToImage.beginIndex(steps: 8, strength: .nan) }
        #expect(throws: PipelineError.noStepsLeft(strength: 0.1, steps: 8)) { try ImageToImage.beginIndex(steps: 8, strength: 0.1) }
        let message = PipelineError.noStepsLeft(strength: 0.1, steps: 8).localizedDescription
        #expect(message.contains("strength 0.1") && message.contains("8 steps"))
        #expect(PipelineError.strengthOutOfRange(1.5).localizedDescription == "expected strength in (0, 1], got 1.5")
    }

    /// Every refusal comes before any model runs.
    @Test func requestsThatCannotRunAreRefusedBeforeAnyModel() throws {
        let backend = FakeBackend()
        let image = try Self.image()
        let noEncoder = try Self.pipeline(try Self.description(encoder: false), backend)
        #expect(throws: PipelineError.missingEncoder) { try noEncoder.generate(GenerationRequest(prompt: "a", initImage: image)) }
        #expect(PipelineError.missingEncoder.localizedDescription.contains("--components including encoder"))
        let pipeline = try Self.pipeline(try Self.description(), backend)
        #expect(throws: PipelineError.strengthOutOfRange(0)) {
            try pipeline.generate(GenerationRequest(prompt: "a", initImage: image, strength: 0))
        }
        #expect(throws: PipelineError.noStepsLeft(strength: 0.1, steps: 8)) {
            try pipeline.generate(GenerationRequest(prompt: "a", initImage: image, strength: 0.1))
        }
        #expect(throws: PipelineError.strengthWithoutImage(0.5)) { try pipeline.generate(GenerationRequest(prompt: "a", strength: 0.5)) }
        #if !canImport(CoreGraphics)
        let wrongSize = try Self.image(width: 96, height: 64)
        #expect(throws: PipelineError.initImageSize(expected: .init(height: 64, width: 64), got: .init(height: 64, width: 96))) {
            try pipeline.generate(GenerationRequest(prompt: "a", initImage: wrongSize))
        }
        #endif
        #expect(throws: PipelineError.unsupportedImageSize(height: 64, width: 96, available: ["64x64"])) {
            try pipeline.generate(GenerationRequest(prompt: "a", imageSize: .init(height: 64, width: 96)))
        }
        #expect(backend.encodedImages.isEmpty && backend.unetBatches.isEmpty && backend.decodeCalls == 0)
    }

    /// Without a strength, an image runs int(8 x 0.8) = 6 of the 8 steps, from the third timestep.
    @Test func defaultStrengthRunsTheLastStepsOfTheSchedule() throws {
        let backend = FakeBackend()
        let pipeline = try Self.pipeline(try Self.description(), backend)
        var totals: Set<Int> = []
        let result = try pipeline.generate(GenerationRequest(prompt: "a cat", guidanceScale: 1, initImage: try Self.image())) {
            totals.insert($0.totalSteps)
        }
        #expect(GenerationRequest.defaultStrength == 0.8)
        #expect(result.timesteps == [749, 624, 499, 374, 249, 124])
        #expect(backend.unetTimesteps.map { $0[0] } == [749, 749, 624, 624, 499, 499, 374, 374, 249, 249, 124, 124].enumerated()
            .filter { $0.offset % 2 == 0 }.map { Float($0.element) })
        #expect(totals == [6])
        #expect(backend.encodedImages.count == 1 && backend.encodedImages[0].shape == [1, 3, 64, 64])
        let text = try pipeline.generate(GenerationRequest(prompt: "a cat", guidanceScale: 1))
        #expect(text.timesteps.count == 8 && result.timings.imageEncoderMs >= 0 && text.timings.imageEncoderMs == 0)
        // The same seed and image give the same image; another image another one.
        let again = try pipeline.generate(GenerationRequest(prompt: "a cat", guidanceScale: 1, initImage: try Self.image()))
        #expect(again.latents == result.latents)
        let other = try pipeline.generate(GenerationRequest(prompt: "a cat", guidanceScale: 1,
                                                            initImage: try RGBImage(width: 64, height: 64, bytes: .init(repeating: 9, count: 64 * 64 * 3))))
        #expect(other.latents != result.latents)
    }

    /// NaN from the encoder is caught like any other component's, and retried on cpuAndGPU.
    @Test func nonFiniteEncoderOutputIsCaught() throws {
        let backend = FakeBackend()
        backend.poisoned = [.encoder: 1]
        let pipeline = try Self.pipeline(try Self.description(), backend)
        #expect(throws: PipelineError.nonFiniteOutput(component: .encoder, step: nil, count: 1, retried: false)) {
            try pipeline.generate(GenerationRequest(prompt: "a", initImage: try Self.image()))
        }
        backend.canFallBack = true
        let retrying = Pipeline(description: pipeline.description, tokenizer: pipeline.tokenizer, backend: backend,
                                nonFiniteRecovery: .retryOnCPUAndGPU)
        _ = try retrying.generate(GenerationRequest(prompt: "a", initImage: try Self.image()))
    }

    @Test func rgbImageTensorIsScaledToMinusOneOne() throws {
        let image = try RGBImage(width: 2, height: 1, bytes: [0, 255, 51, 102, 127, 128])
        #expect(image.tensor().shape == [1, 3, 1, 2])
        let bytes: [Float] = [0, 102, 255, 127, 51, 128]  // channel-major: R of both pixels, then G, then B
        #expect(image.tensor().scalars == bytes.map { $0 / 127.5 - 1 })
        #expect(throws: TensorError.self) { try RGBImage(width: 2, height: 2, bytes: [0, 1, 2]) }
        let rgba = try RGBAImage(image: Tensor(shape: [1, 3, 1, 1], scalars: [1, -1, 0]))
        #expect(RGBImage(rgba).bytes == [255, 0, 128])
    }

    /// A second size runs with its own latent shape, and each backend call carries its size: the
    /// interpreter names the function (text encoder: none), for text and image to image.
    @Test func secondSizeRunsItsFunctionThroughTheInterpreter() throws {
        let server = FakeInterpreterServer()
        var description = try Self.description(sizes: true)
        description.guidance.unetBatch = 1
        let backend = InterpreterBackend(description: description, channel: server)
        let pipeline = try Self.pipeline(description, backend)
        let wide = PipelineDescription.ImageSize(height: 64, width: 96)
        let result = try pipeline.generate(GenerationRequest(prompt: "a cat", steps: 8, guidanceScale: 1, imageSize: wide))
        #expect(result.latents.shape == [1, 4, 8, 12] && result.image.shape == [1, 3, 64, 96])
        #expect(server.requests.map(\.component) == ["text_encoder"] + [String](repeating: "unet", count: 8) + ["decoder"])
        #expect(server.functions == [nil] + [String?](repeating: "image_64x96", count: 8) + ["image_64x96"])
        let before = server.functions.count
        let img2img = try pipeline.generate(GenerationRequest(prompt: "a cat", guidanceScale: 1, initImage: try Self.image(width: 96, height: 64),
                                                              strength: 0.5, imageSize: wide))
        #expect(img2img.latents.shape == [1, 4, 8, 12] && img2img.timesteps.count == 4)
        let calls = Array(server.requests.map(\.component)[before...])
        #expect(calls == ["text_encoder", "encoder", "unet", "unet", "unet", "unet", "decoder"])
        #expect(Array(server.functions[before...]) == [nil, "image_64x96", "image_64x96", "image_64x96", "image_64x96", "image_64x96", "image_64x96"])
        // the default size names its function too (the packages are multifunction)
        _ = try pipeline.generate(GenerationRequest(prompt: "a cat", guidanceScale: 1))
        #expect(server.functions.last == "image_64x64")
        // a size not listed: one line naming the listed ones, before any request
        let count = server.requests.count
        let error = PipelineError.unsupportedImageSize(height: 96, width: 96, available: ["64x64", "64x96"])
        #expect(throws: error) { try pipeline.generate(GenerationRequest(prompt: "a", imageSize: .init(height: 96, width: 96))) }
        #expect(error.localizedDescription.contains("(64x64, 64x96; height x width), got 96x96"))
        #expect(server.requests.count == count)
    }

    /// Folders without `sizes` send no function, as before format 3.
    @Test func singleSizeFoldersNameNoFunction() throws {
        let server = FakeInterpreterServer()
        var description = try Self.description()
        description.guidance.unetBatch = 1
        let pipeline = try Self.pipeline(description, InterpreterBackend(description: description, channel: server))
        _ = try pipeline.generate(GenerationRequest(prompt: "a cat", guidanceScale: 1, initImage: try Self.image(), strength: 0.25))
        #expect(server.requests.map(\.component) == ["text_encoder", "encoder", "unet", "unet", "decoder"])
        #expect(server.functions.allSatisfy { $0 == nil })
        let bytes = try InterpreterProtocol.request(component: .encoder, function: "image_64x96", inputs: [])
        #expect(String(decoding: bytes, as: UTF8.self) == "{\"component\":\"encoder\",\"function\":\"image_64x96\",\"inputs\":[]}\n")
    }

    /// The start latents come from the posterior sample (draw 1) and the noise (draw 2).
    @Test func randomStreamOrderIsPosteriorThenNoise() throws {
        let backend = FakeBackend()
        let description = try Self.description()
        let pipeline = try Self.pipeline(description, backend)
        let image = try Self.image()
        _ = try pipeline.generate(GenerationRequest(prompt: "a", guidanceScale: 1, seed: 7, initImage: image, strength: 1))
        var random = TorchRandomSource(seed: 7)
        let x0 = try ImageToImage.posteriorSample(moments: FakeModel.encoderMoments(image.tensor()), noise: random.normalTensor(shape: [1, 4, 8, 8]),
                                                  scaleFactor: description.latent.scaleFactor)
        var sampler = try description.makeSampler(steps: 8)
        try sampler.setBeginIndex(0)
        let start = try sampler.addNoise(to: x0, noise: random.normalTensor(shape: [1, 4, 8, 8]), index: 0)
        let sample = try #require(backend.unetSamples.first)
        #expect(maxAbsDifference(try sample.batchItem(0).scalars, start.scalars) <= 1e-6)
    }
}
