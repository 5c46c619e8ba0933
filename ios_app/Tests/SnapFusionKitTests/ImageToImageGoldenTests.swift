import Foundation
import Testing
@testable import SnapFusionKit

/// tests/golden/img2img.json, written by tests/golden/make_img2img_golden.py from diffusers'
/// own schedulers, StableDiffusionImg2ImgPipeline.get_timesteps and DiagonalGaussianDistribution
/// on fixed posterior moments and the fake UNet of FakeModel.swift.
struct ImageToImageGolden: Decodable {
    struct Case: Decodable, Sendable, CustomTestStringConvertible {
        var name: String
        var config: SamplersGolden.Config
        var steps: Int
        var strength: Double
        var tStart: Int
        var predictionType: PredictionType
        var guidanceScale: Double
        var seed: UInt64
        var condition: Double
        var uncondition: Double
        var shape: [Int]
        var latentStride: Int
        var record: PipelineDescription.Sampler
        /// Every `latentStride`-th value of the sampled image latent x0, of the noised start and of each call's latents.
        var imageLatents: [Float]
        var startLatents: [Float]
        var latents: [[Float]]
        var testDescription: String { name }

        /// The case as the sampler golden's type (schedule and fake prediction helpers).
        var samplerCase: SamplersGolden.Case {
            .init(name: name, schedulerClass: "", config: config, steps: steps, predictionType: predictionType,
                  guidanceScale: guidanceScale, seed: seed, condition: condition, uncondition: uncondition, shape: shape,
                  latentStride: latentStride, record: record, latents: [])
        }
    }

    var scalingFactor: Double
    var momentsShape: [Int]
    var moments: [Float]
    var firstCaseImageLatents: [Float]
    var cases: [Case]
}

/// Float32 rounding of the same float64 formulas, and torch's float32 alphas_cumprod and sigmas
/// against the contract's float64 ones, differ by a few ulps of the largest values over a whole
/// trajectory; 1e-5 (relative above 1) bounds that and still catches a wrong begin index,
/// coefficient, draw order or history.
let imageToImageTolerance: Float = 1e-5

/// `max |a - b| / max(1, |b|)`.
func maxRelativeDifference(_ a: [Float], _ b: [Float]) -> Float {
    zip(a, b).map { abs($0 - $1) / max(1, abs($1)) }.max() ?? .infinity
}

@Suite struct ImageToImageGoldenTests {
    static let golden = Result { try GoldenFiles.load(ImageToImageGolden.self, "img2img.json") }
    static let cases = (try? golden.get().cases) ?? []

    static func moments() throws -> Tensor {
        let golden = try golden.get()
        return try Tensor(shape: golden.momentsShape, scalars: golden.moments)
    }

    @Test func goldenFileCoversEverySampler() throws {
        let cases = try Self.golden.get().cases
        #expect(Set(cases.map(\.record.name)) == Set(SamplerName.allCases.map(\.rawValue)))
        #expect(cases.contains { $0.tStart == 0 } && cases.contains { $0.tStart > 1 })
        #expect(cases.contains { $0.guidanceScale > 1 } && Set(cases.map(\.predictionType)) == [.epsilon, .vPrediction])
    }

    /// The first draw of the seed's stream samples the posterior: every value, the clamped
    /// log-variances included (std e^10 at 21 -> 20, e^-15 at -35 -> -30).
    @Test func posteriorSampleMatchesDiagonalGaussian() throws {
        let golden = try Self.golden.get()
        let item = try #require(golden.cases.first)
        var random = TorchRandomSource(seed: item.seed)
        let x0 = try ImageToImage.posteriorSample(moments: try Self.moments(), noise: random.normalTensor(shape: item.shape),
                                                  scaleFactor: golden.scalingFactor)
        #expect(x0.count == golden.firstCaseImageLatents.count)
        let error = maxRelativeDifference(x0.scalars, golden.firstCaseImageLatents)
        #expect(error <= 1e-6, "posterior sample max relative error \(error)")
        #expect(x0.scalars.map(abs).max()! > 1000, "the log-variance clamped at 20 is part of the check")
    }

    @Test(arguments: cases) func samplerFromBeginIndexReproducesDiffusers(item: ImageToImageGolden.Case) throws {
        let golden = try Self.golden.get()
        let begin = try ImageToImage.beginIndex(steps: item.steps, strength: item.strength)
        #expect(begin == item.tStart)
        let name = try #require(SamplerName(rawValue: item.record.name))
        var sampler = try name.makeSampler(record: item.record, schedule: SamplersGoldenTests.schedule(item.samplerCase),
                                           predictionType: item.predictionType)
        try sampler.setBeginIndex(begin)
        #expect(item.latents.count == sampler.unetTimesteps.count - begin)
        var random = TorchRandomSource(seed: item.seed)
        let x0 = try ImageToImage.posteriorSample(moments: try Self.moments(), noise: random.normalTensor(shape: item.shape),
                                                  scaleFactor: golden.scalingFactor)
        let stride = item.latentStride
        var worst = maxRelativeDifference(SamplersGoldenTests.sampled(x0, stride: stride), item.imageLatents)
        #expect(worst <= 1e-6, "image latents: max error \(worst)")
        var z = try sampler.addNoise(to: x0, noise: random.normalTensor(shape: item.shape), index: begin)
        let startError = maxRelativeDifference(SamplersGoldenTests.sampled(z, stride: stride), item.startLatents)
        #expect(startError <= imageToImageTolerance, "start latents: max error \(startError)")
        worst = max(worst, startError)
        for index in begin..<sampler.unetTimesteps.count {
            let t = sampler.unetTimesteps[index]
            let prediction = try SamplersGoldenTests.fakePrediction(sampler.scaleModelInput(z, index: index), t: t, item: item.samplerCase)
            z = try sampler.step(index: index, modelOutput: prediction, sample: z, random: &random).previous
            let error = maxRelativeDifference(SamplersGoldenTests.sampled(z, stride: stride), item.latents[index - begin])
            worst = max(worst, error)
            #expect(error <= imageToImageTolerance, "call \(index) (t=\(t)): max error \(error)")
        }
        print("img2img golden \(item.name): begin \(begin), max |Swift - diffusers| (relative above 1) = \(worst)")
    }

    /// The whole pipeline (tokenizer, fake text encoder, the encoder's moments, the stream order,
    /// guidance, the sampler from its begin index) gives diffusers' final latents.
    @Test(arguments: cases) func pipelineReproducesDiffusers(item: ImageToImageGolden.Case) throws {
        let backend = FakeBackend()
        backend.encoderMoments = try Self.moments()
        var description = try PipelineDescription.decode(try ModelFolder.json(named: "valid"))
        description.formatVersion = 3
        description.sampler = item.record
        description.predictionType = item.predictionType
        description.latent.scaleFactor = try Self.golden.get().scalingFactor
        description.components.encoder = ImageToImagePipelineTests.encoderComponent(height: 64, width: 64)
        let pipeline = Pipeline(description: description, tokenizer: try PipelineTests.tokenizer.get(), backend: backend)
        let image = try RGBImage(width: 64, height: 64, bytes: (0..<(64 * 64 * 3)).map { UInt8($0 % 251) })
        var stages: [GenerationProgress.Stage] = []
        let result = try pipeline.generate(GenerationRequest(prompt: PipelineSamplerTests.prompt, guidanceScale: item.guidanceScale,
                                                             seed: item.seed, initImage: image, strength: item.strength)) {
            stages.append($0.stage)
        }
        let calls = item.latents.count
        #expect(backend.encodedImages == [image.tensor()])
        #expect(result.timesteps == Array(item.record.timesteps[item.tStart...]))
        #expect(result.timings.unetStepMs.count == calls && backend.unetBatches.count == calls)
        #expect(stages == [.textEncoder, .imageEncoder] + [GenerationProgress.Stage](repeating: .unet, count: calls) + [.decoder, .done])
        let error = maxRelativeDifference(SamplersGoldenTests.sampled(result.latents, stride: item.latentStride), try #require(item.latents.last))
        #expect(error <= imageToImageTolerance, "final latents: max error \(error)")
    }
}
