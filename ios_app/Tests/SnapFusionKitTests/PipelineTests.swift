import Foundation
import Testing
@testable import SnapFusionKit

@Suite struct PipelineTests {
    static let tokenizer = Result { try CLIPTokenizer(directory: GoldenFiles.tokenizerDirectory) }

    /// The valid golden pipeline.json adapted to a trajectory's settings.
    static func description(for item: SamplerGolden.Trajectory) throws -> PipelineDescription {
        var description = try PipelineDescription.decode(try ModelFolder.json(named: "valid"))
        description.predictionType = item.predictionType
        description.guidance.unetBatch = item.unetBatch
        description.sampler.timestepSpacing = item.timestepSpacing
        description.sampler.timesteps = item.timesteps.map(Double.init)
        description.sampler.defaultSteps = item.steps
        return description
    }

    /// The whole pipeline (tokenizer, fake text encoder, RNG, guidance, DDIM) against Python.
    @Test(arguments: SamplerTests.trajectories) func reproducesPythonTrajectory(item: SamplerGolden.Trajectory) throws {
        let backend = FakeBackend()
        let pipeline = Pipeline(description: try Self.description(for: item), tokenizer: try Self.tokenizer.get(), backend: backend)
        var steps: [Int] = []
        let result = try pipeline.generate(GenerationRequest(prompt: item.prompt, negativePrompt: item.negativePrompt,
                                                             steps: item.steps, guidanceScale: item.guidanceScale, seed: item.seed)) {
            if $0.stage == .unet { steps.append($0.step) }
        }
        #expect(result.timesteps == item.timesteps.map(Double.init))
        #expect(steps == Array(1...item.steps))
        let error = maxAbsDifference(result.latents.scalars, try #require(item.latents.last))
        #expect(error <= 1e-5, "final latent max |error| \(error)")
        let guided = Pipeline.usesGuidance(item.guidanceScale)
        let expectedBatches = item.unetBatch == 2 ? [Int](repeating: 2, count: item.steps)
            : [Int](repeating: 1, count: item.steps * (guided ? 2 : 1))
        #expect(backend.unetBatches == expectedBatches)
        #expect(result.image.shape == [1, 3, 64, 64])
        #expect(result.timings.unetStepMs.count == item.steps)
    }

    @Test func sameSeedIsReproducibleAndDecoderGetsScaledLatents() throws {
        let item = try #require(SamplerTests.trajectories.first)
        let pipeline = Pipeline(description: try Self.description(for: item), tokenizer: try Self.tokenizer.get(), backend: FakeBackend())
        let request = GenerationRequest(prompt: "a red bicycle", seed: 3)
        let a = try pipeline.generate(request)
        let b = try pipeline.generate(request)
        #expect(a.latents == b.latents && a.image == b.image)
        let z = a.latents.scalars[0] / Float(0.18215)
        #expect(abs(a.image.scalars[0] - Float(tanh(Double(z) / 4))) < 1e-6)
    }

    @Test func cancellationTokenStopsBetweenSteps() throws {
        let item = try #require(SamplerTests.trajectories.first)
        let backend = FakeBackend()
        let pipeline = Pipeline(description: try Self.description(for: item), tokenizer: try Self.tokenizer.get(), backend: backend)
        let token = CancellationToken()
        #expect(throws: PipelineError.cancelled) {
            try pipeline.generate(GenerationRequest(prompt: "x"), cancellation: token) { progress in
                if progress.step == 3 { token.cancel() }
            }
        }
        #expect(backend.unetBatches.count == 3)
    }

    @Test func taskCancellationStopsGeneration() async throws {
        let item = try #require(SamplerTests.trajectories.first)
        let description = try Self.description(for: item)
        let tokenizer = try Self.tokenizer.get()
        let backend = FakeBackend()
        let pipeline = Pipeline(description: description, tokenizer: tokenizer, backend: backend)
        backend.onPredict = { withUnsafeCurrentTask { $0?.cancel() } }
        await #expect(throws: PipelineError.cancelled) { try await pipeline.generate(GenerationRequest(prompt: "x")) }
        #expect(backend.unetBatches.count == 1)
    }

    @Test func progressReportsStagesAndTimings() throws {
        let item = try #require(SamplerTests.trajectories.first)
        let clock = FakeClock()
        let backend = FakeBackend(clock: clock)
        let pipeline = Pipeline(description: try Self.description(for: item), tokenizer: try Self.tokenizer.get(),
                                backend: backend, clock: clock)
        var stages: [GenerationProgress.Stage] = []
        let result = try pipeline.generate(GenerationRequest(prompt: "a cat", guidanceScale: 7.5)) { stages.append($0.stage) }
        #expect(stages == [.textEncoder] + [GenerationProgress.Stage](repeating: .unet, count: 8) + [.decoder, .done])
        #expect(result.timings.textEncoderMs == 8)  // two prompts x 4 ms
        #expect(result.timings.unetStepMs == [Double](repeating: 230, count: 8))  // batch 2 x 115 ms
        #expect(result.timings.decoderMs == 116)
        #expect(result.timings.endToEndMs == 8 + 8 * 230 + 116)
    }

    @Test func imageConvertsToRGBA() throws {
        let image = try Tensor(shape: [1, 3, 1, 2], scalars: [-1, 1, 0, 2, Float.nan, -3])
        let pixels = try RGBAImage(image: image)
        #expect(pixels.width == 2 && pixels.height == 1)
        #expect(pixels.bytes == [0, 128, 0, 255, 255, 255, 0, 255])
    }

    @Test func textEmbeddingsMoveToChannelsFirst() throws {
        let t = try Tensor(shape: [1, 2, 3], scalars: [1, 2, 3, 4, 5, 6])
        let c = try t.sequenceToChannelsFirst()
        #expect(c.shape == [1, 3, 1, 2])
        #expect(c.scalars == [1, 4, 2, 5, 3, 6])
    }
}
