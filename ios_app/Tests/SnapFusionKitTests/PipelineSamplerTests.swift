import Foundation
import Testing
@testable import SnapFusionKit

/// The whole pipeline (tokenizer, fake text encoder, random stream, guidance or guidance
/// embedding, the folder's sampler, decoder) on format_version 2 folders, against the runs
/// diffusers made in tests/golden/samplers.json. The fake text encoder gives c = 0.5 for
/// "a photo of an astronaut" and 0 for "", the conditions those runs used.
@Suite struct PipelineSamplerTests {
    static let prompt = "a photo of an astronaut"

    static func golden(_ name: String) throws -> SamplersGolden.Case {
        try #require(try SamplersGoldenTests.golden.get().cases.first { $0.name == name })
    }

    /// The pipelines.json sample `sample` sampling with `item`'s record and prediction type.
    static func pipeline(_ sample: String, _ item: SamplersGolden.Case, backend: FakeBackend) throws -> Pipeline {
        var description = try PipelineDescription.decode(try ModelFolder.json(named: sample))
        description.sampler = item.record
        description.predictionType = item.predictionType
        return Pipeline(description: description, tokenizer: try PipelineTests.tokenizer.get(), backend: backend)
    }

    /// `item`'s run by the sampler alone, with the unconditional prompt's condition `uncondition`.
    static func reference(_ item: SamplersGolden.Case, uncondition: Double) throws -> Tensor {
        var item = item
        item.uncondition = uncondition
        var sampler = try SamplerName(rawValue: item.record.name)!.makeSampler(
            record: item.record, schedule: SamplersGoldenTests.schedule(item), predictionType: item.predictionType)
        var random = TorchRandomSource(seed: item.seed)
        var z = random.normalTensor(shape: item.shape).scaled(by: Float(sampler.initNoiseSigma))
        for (index, t) in sampler.unetTimesteps.enumerated() {
            let prediction = try SamplersGoldenTests.fakePrediction(sampler.scaleModelInput(z, index: index), t: t, item: item)
            z = try sampler.step(index: index, modelOutput: prediction, sample: z, random: &random).previous
        }
        return z
    }

    static func finalError(_ result: GenerationResult, _ item: SamplersGolden.Case) throws -> Float {
        maxAbsDifference(SamplersGoldenTests.sampled(result.latents, stride: item.latentStride), try #require(item.latents.last))
    }

    /// A full LCM folder: w = 8.5 goes in as `timestep_cond`, one batch-1 conditional call per
    /// step, no classifier-free guidance (so the negative prompt is not used), LCM noise from the
    /// stream of the initial latents.
    @Test func lcmFolderWithGuidanceEmbeddingRunsOneCallPerStep() throws {
        let item = try Self.golden("lcm_4_steps")
        let backend = FakeBackend()
        let pipeline = try Self.pipeline("v2_lcm_guidance_embedding", item, backend: backend)
        #expect(pipeline.description.guidance.embedding == .init(input: "timestep_cond", dim: 256))
        let result = try pipeline.generate(GenerationRequest(prompt: Self.prompt, negativePrompt: "blurry", seed: item.seed))
        #expect(backend.unetBatches == [1, 1, 1, 1])
        #expect(backend.unetTimesteps == [[999], [759], [499], [259]])
        let embedding = GuidanceEmbedding.embedding(guidanceScale: 8.5, dim: 256)
        #expect(backend.timestepConds.allSatisfy { $0 == embedding })
        #expect(embedding.scalars.contains { $0 != 0 && $0 != 1 })
        let error = try Self.finalError(result, item)
        #expect(error <= samplerTolerance, "final latent max |error| \(error)")
        let other = try pipeline.generate(GenerationRequest(prompt: Self.prompt, negativePrompt: "", guidanceScale: 2, seed: item.seed))
        #expect(backend.timestepConds.last == GuidanceEmbedding.embedding(guidanceScale: 2, dim: 256))
        #expect(other.latents == result.latents)  // the fake UNet ignores timestep_cond; guidance never runs
    }

    /// Euler ancestral draws one noise tensor per call after the initial latents, from the same
    /// generator: the pipeline's final latents are diffusers'.
    @Test(arguments: ["euler_ancestral_4_steps", "euler_ancestral_2_steps", "euler_ancestral_1_step"])
    func eulerAncestralFolderContinuesTheRandomStream(name: String) throws {
        let item = try Self.golden(name)
        let backend = FakeBackend()
        let pipeline = try Self.pipeline("v2_euler_ancestral", item, backend: backend)
        let result = try pipeline.generate(GenerationRequest(prompt: Self.prompt, guidanceScale: item.guidanceScale, seed: item.seed))
        #expect(result.timesteps == item.record.timesteps)
        #expect(backend.timestepConds.allSatisfy { $0 == nil })
        let error = try Self.finalError(result, item)
        #expect(error <= samplerTolerance, "final latent max |error| \(error)")
    }

    /// Classifier-free guidance through the pipeline with each sampler family, in the folder's
    /// UNet batch (2: one `[uncond, cond]` call; 1: two calls).
    @Test(arguments: [("dpmsolver++_2m_karras_v_cfg", "v2_dpmsolver++", 2), ("pndm_epsilon_cfg", "v2_pndm", 1),
                      ("euler_leading_epsilon_cfg", "v2_euler", 2), ("ddim_leading_epsilon_cfg", "v2_ddim", 1)])
    func guidedFoldersMatchDiffusers(name: String, sample: String, unetBatch: Int) throws {
        let item = try Self.golden(name)
        let backend = FakeBackend()
        var description = try Self.pipeline(sample, item, backend: backend).description
        description.guidance.unetBatch = unetBatch
        let pipeline = Pipeline(description: description, tokenizer: try PipelineTests.tokenizer.get(), backend: backend)
        var previews = 0
        let result = try pipeline.generate(GenerationRequest(prompt: Self.prompt, guidanceScale: item.guidanceScale, seed: item.seed),
                                           previewEvery: 2) { if $0.preview != nil { previews += 1 } }
        let calls = item.record.timesteps.count
        #expect(backend.unetBatches == (unetBatch == 2 ? [Int](repeating: 2, count: calls) : [Int](repeating: 1, count: 2 * calls)))
        #expect(previews == (calls - 1) / 2)
        let error = try Self.finalError(result, item)
        #expect(error <= samplerTolerance, "final latent max |error| \(error)")
    }

    /// The negative prompt is the unconditional prompt of classifier-free guidance, as diffusers'
    /// `negative_prompt`: "a photo" (2 tokens: c = 0.2) instead of "" changes the unconditional
    /// prediction and nothing else.
    @Test func negativePromptIsTheUnconditionalPrompt() throws {
        let item = try Self.golden("dpmsolver++_2m_karras_v_cfg")
        let pipeline = try Self.pipeline("v2_dpmsolver++", item, backend: FakeBackend())
        let result = try pipeline.generate(GenerationRequest(prompt: Self.prompt, negativePrompt: "a photo",
                                                             guidanceScale: item.guidanceScale, seed: item.seed))
        let expected = try Self.reference(item, uncondition: 0.2)
        #expect(maxAbsDifference(result.latents.scalars, expected.scalars) <= 1e-6)
        let plain = try Self.reference(item, uncondition: item.uncondition)
        #expect(maxAbsDifference(result.latents.scalars, plain.scalars) > 1e-3)
        // Without guidance (w <= 1) the negative prompt is not encoded at all.
        let unguided = try pipeline.generate(GenerationRequest(prompt: Self.prompt, negativePrompt: "a photo", guidanceScale: 1, seed: 1))
        let unguidedPlain = try pipeline.generate(GenerationRequest(prompt: Self.prompt, guidanceScale: 1, seed: 1))
        #expect(unguided.latents == unguidedPlain.latents)
    }

    /// A format_version 2 folder's lists were planned for one step count; another count is an
    /// error that says so, not a silently different schedule.
    @Test func formatVersion2FolderRefusesOtherStepCounts() throws {
        let item = try Self.golden("lcm_4_steps")
        let pipeline = try Self.pipeline("v2_lcm", item, backend: FakeBackend())
        #expect(throws: SamplerError.stepsFixedByFolder(requested: 6, planned: 4)) {
            try pipeline.generate(GenerationRequest(prompt: Self.prompt, steps: 6))
        }
    }
}
