import Foundation
import Testing
@testable import SnapFusionKit

/// tests/golden/samplers.json, written by tests/golden/make_sampler_golden.py from diffusers' own
/// schedulers (scale_model_input + step with one CPU generator) on the fake UNet of FakeModel.swift.
struct SamplersGolden: Decodable {
    struct Config: Decodable, Sendable {
        var numTrainTimesteps: Int
        var betaStart: Double
        var betaEnd: Double
        var betaSchedule: BetaSchedule
    }

    struct Case: Decodable, Sendable, CustomTestStringConvertible {
        var name: String
        var schedulerClass: String
        var config: Config
        var steps: Int
        var predictionType: PredictionType
        var guidanceScale: Double
        var seed: UInt64
        var condition: Double
        var uncondition: Double
        var shape: [Int]
        var latentStride: Int
        var record: PipelineDescription.Sampler
        /// Every `latentStride`-th value of the initial latents, then of the latents after each call.
        var latents: [[Float]]
        var testDescription: String { name }
    }

    struct Embedding: Decodable, Sendable, CustomTestStringConvertible {
        var guidanceScale: Double
        var dim: Int
        var values: [Float]
        var testDescription: String { "w=\(guidanceScale) dim \(dim)" }
    }

    var cases: [Case]
    var guidanceEmbeddings: [Embedding]
}

/// diffusers computes the schedulers in float32 (alphas_cumprod, sigmas and every product), the
/// Swift samplers in float64 from the contract's float64 alphas_cumprod; the two agree to a few
/// float32 ulps of the largest latents (|z| up to ~16 at sigma 14.6) after a whole trajectory,
/// far below anything visible. 1e-4 bounds that difference with margin and still catches any
/// wrong coefficient, timestep, order of noise draws or multistep history.
let samplerTolerance: Float = 1e-4

@Suite struct SamplersGoldenTests {
    static let golden = Result { try GoldenFiles.load(SamplersGolden.self, "samplers.json") }
    static let cases = (try? golden.get().cases) ?? []
    static let embeddings = (try? golden.get().guidanceEmbeddings) ?? []

    static func schedule(_ item: SamplersGolden.Case) -> NoiseSchedule {
        NoiseSchedule(numTrainTimesteps: item.config.numTrainTimesteps, betaStart: item.config.betaStart,
                      betaEnd: item.config.betaEnd, betaSchedule: item.config.betaSchedule,
                      finalAlphaCumprod: item.record.finalAlphaCumprod ?? 1)
    }

    /// Every `stride`-th value, as the golden file stores them.
    static func sampled(_ tensor: Tensor, stride step: Int) -> [Float] {
        stride(from: 0, to: tensor.count, by: step).map { tensor.scalars[$0] }
    }

    /// The fake UNet at the (float) timestep `t` on every element, with guidance as the pipeline applies it.
    static func fakePrediction(_ input: Tensor, t: Double, item: SamplersGolden.Case) throws -> Tensor {
        func model(_ c: Double) -> Tensor {
            var out = input
            for i in out.scalars.indices { out.scalars[i] = FakeModel.unet(input.scalars[i], t: t, c: c) }
            return out
        }
        let conditional = model(item.condition)
        guard Pipeline.usesGuidance(item.guidanceScale) else { return conditional }
        return try DDIMSampler.guide(conditional: conditional, unconditional: model(item.uncondition), scale: Float(item.guidanceScale))
    }

    @Test func goldenFileCoversEverySampler() throws {
        let cases = try Self.golden.get().cases
        #expect(Set(cases.map(\.record.name)) == Set(SamplerName.allCases.map(\.rawValue)))
        #expect(Set(cases.map(\.predictionType)) == [.epsilon, .vPrediction])
        #expect(cases.contains { $0.guidanceScale > 1 } && cases.contains { $0.guidanceScale <= 1 })
        #expect(cases.contains { $0.record.sigmas != nil && $0.record.name == "dpmsolver++" && $0.name.contains("karras") })
    }

    /// The Swift sampler, from its record alone, follows diffusers' latents call after call,
    /// its noise drawn from the stream that made the initial latents.
    @Test(arguments: cases) func samplerReproducesDiffusers(item: SamplersGolden.Case) throws {
        let name = try #require(SamplerName(rawValue: item.record.name))
        var sampler = try name.makeSampler(record: item.record, schedule: Self.schedule(item), predictionType: item.predictionType)
        #expect(sampler.unetTimesteps == item.record.timesteps)
        #expect(item.latents.count == sampler.unetTimesteps.count + 1)
        var random = TorchRandomSource(seed: item.seed)
        var z = random.normalTensor(shape: item.shape).scaled(by: Float(sampler.initNoiseSigma))
        var worst = maxAbsDifference(Self.sampled(z, stride: item.latentStride), item.latents[0])
        #expect(worst <= 1e-6, "initial latents: max |error| \(worst)")
        for (index, t) in sampler.unetTimesteps.enumerated() {
            let input = sampler.scaleModelInput(z, index: index)
            let prediction = try Self.fakePrediction(input, t: t, item: item)
            z = try sampler.step(index: index, modelOutput: prediction, sample: z, random: &random).previous
            let error = maxAbsDifference(Self.sampled(z, stride: item.latentStride), item.latents[index + 1])
            worst = max(worst, error)
            #expect(error <= samplerTolerance, "call \(index) (t=\(t)): max |error| \(error)")
        }
        print("sampler golden \(item.name): max |Swift - diffusers| over \(item.latents.count - 1) calls = \(worst)")
    }

    /// Each golden record, placed in a format_version 2 pipeline.json, passes the reader's checks
    /// and gives a sampler over exactly its lists.
    @Test(arguments: cases) func recordDecodesInPipelineJSON(item: SamplersGolden.Case) throws {
        let data = try Data(contentsOf: GoldenFiles.golden.appendingPathComponent("samplers.json"))
        let root = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let raw = try #require((root["cases"] as? [[String: Any]])?.first { $0["name"] as? String == item.name }?["record"])
        var pipeline = try #require(try JSONSerialization.jsonObject(with: try ModelFolder.json(named: "valid")) as? [String: Any])
        pipeline["format_version"] = 2
        pipeline["prediction_type"] = item.predictionType.rawValue
        pipeline["sampler"] = raw
        let description = try PipelineDescription.decode(try JSONSerialization.data(withJSONObject: pipeline))
        #expect(description.sampler == item.record)
        let count = item.record.timesteps.count
        let name = try #require(description.samplerName)
        #expect(name.usesSigmas == (item.record.sigmas?.count == count + 1))
        #expect(name.usesPreviousTimesteps == (item.record.previousTimesteps?.count == count))
        #expect((name == .pndm) == (item.record.currentTimesteps?.count == count))
        let sampler = try description.makeSampler(steps: item.steps)
        #expect(sampler.unetTimesteps == item.record.timesteps && sampler.initNoiseSigma == item.record.initNoiseSigma)
        #expect(throws: SamplerError.stepsFixedByFolder(requested: item.steps + 1, planned: item.steps)) {
            try description.makeSampler(steps: item.steps + 1)
        }
    }

    /// torch computes the embedding in float32; sin and cos are within an ulp (< 1e-7) of each
    /// other's. The frequencies f_k are not always: torch's float exp (MKL's vsExp in the build
    /// that wrote the file) is one ulp from the correctly rounded exp for ~1% of arguments (here
    /// k = 4 of 128), and sin/cos of v f_k (v = 1000 (w - 1), up to 7500) move by up to
    /// |v f_k| 2^-23 for one ulp of f_k. So each value must be within 1e-6 plus that bound; where
    /// v f_k is small (w = 1, dim 7) this is 1e-6.
    @Test(arguments: embeddings) func guidanceEmbeddingMatchesDiffusers(item: SamplersGolden.Embedding) throws {
        let embedding = GuidanceEmbedding.embedding(guidanceScale: item.guidanceScale, dim: item.dim)
        #expect(embedding.shape == [1, item.dim] && item.values.count == item.dim)
        let half = item.dim / 2
        let v = Double(Float(item.guidanceScale - 1) * 1000)
        var exact = 0
        for (index, (got, want)) in zip(embedding.scalars, item.values).enumerated() {
            let k = index % max(half, 1)
            let argument = index < 2 * half ? abs(v * exp(-Double(k) * log(10000.0) / Double(half - 1))) : 0
            let bound = 1e-6 + argument * 0x1p-23
            #expect(Double(abs(got - want)) <= bound, "value \(index): \(got) vs \(want)")
            if abs(got - want) <= 1e-6 { exact += 1 }
        }
        // Only the few arguments where torch's exp is off by an ulp may use the wider bound.
        #expect(exact >= item.dim - 2 * max(item.dim / 50, 1), "\(item.dim - exact) values beyond 1e-6")
    }

    @Test func ddimOfFormatVersion1MovesToTheNextListedTimestep() {
        let sampler = DDIMSampler(schedule: NoiseSchedule(), predictionType: .epsilon, timesteps: [999, 666, 332])
        #expect(sampler.previousTimesteps == [666, 332, -1])
        #expect(sampler.unetTimesteps == [999, 666, 332])
    }

    @Test func stepsBeyondTheListsThrow() throws {
        var sampler = EulerSampler(predictionType: .epsilon, timesteps: [999], sigmas: [14.6, 0], initNoiseSigma: 14.6, ancestral: true)
        var random = TorchRandomSource(seed: 0)
        let z = Tensor(repeating: 1, shape: [1, 4, 2, 2])
        #expect(throws: SamplerError.stepOutOfRange(1, count: 1)) {
            try sampler.step(index: 1, modelOutput: z, sample: z, random: &random)
        }
        #expect(throws: SamplerError.self) {
            try DPMSolverMultistepSampler(predictionType: .epsilon, timesteps: [999], sigmas: [14.6, 0], solverOrder: 3)
        }
    }
}
