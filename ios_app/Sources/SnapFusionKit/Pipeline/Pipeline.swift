import Foundation

/// Text to image over a `DiffusionBackend`: tokenize, encode the prompts, DDIM with
/// classifier-free guidance from seeded noise, decode.
///
/// ```swift
/// let pipeline = try Pipeline(folder: modelFolder, backend: CoreMLBackend(folder: modelFolder))
/// try pipeline.backend.load()
/// let result = try pipeline.generate(GenerationRequest(prompt: "a photo of an astronaut", seed: 42)) { progress in
///     print(progress.step, progress.totalSteps)
/// }
/// ```
public final class Pipeline {
    /// The folder's pipeline.json.
    public let description: PipelineDescription
    public let tokenizer: CLIPTokenizer
    public let backend: DiffusionBackend
    /// Source of the stage timings.
    public let clock: MillisecondClock

    /// A pipeline over an already-read description and tokenizer.
    public init(description: PipelineDescription, tokenizer: CLIPTokenizer, backend: DiffusionBackend,
                clock: MillisecondClock = MonotonicClock()) {
        self.description = description
        self.tokenizer = tokenizer
        self.backend = backend
        self.clock = clock
    }

    /// Reads pipeline.json and the tokenizer from a converted folder (checking every file).
    public convenience init(folder: URL, backend: DiffusionBackend, clock: MillisecondClock = MonotonicClock()) throws {
        let description = try PipelineDescription.load(from: folder)
        let tokenizer = try CLIPTokenizer(directory: folder, vocabFile: description.tokenizer.vocab,
                                          mergesFile: description.tokenizer.merges,
                                          configuration: description.tokenizerConfiguration)
        self.init(description: description, tokenizer: tokenizer, backend: backend, clock: clock)
    }

    /// Generates one image. The backend must be loaded.
    ///
    /// - Parameters:
    ///   - cancellation: checked before every stage and step, together with `Task.isCancelled`.
    ///   - progress: called after the text encoder, after every UNet step and after decoding.
    /// - Throws: `PipelineError.cancelled` when cancelled, or the backend's errors.
    public func generate(_ request: GenerationRequest, cancellation: CancellationToken? = nil,
                         progress: ((GenerationProgress) -> Void)? = nil) throws -> GenerationResult {
        let sampler = try description.makeSampler(steps: request.steps ?? description.sampler.defaultSteps)
        let scale = request.guidanceScale ?? description.guidance.defaultScale
        let guided = scale > 1  // diffusers' rule: w <= 1 runs the conditional prediction only
        let unetBatch = description.guidance.unetBatch
        guard unetBatch == 1 || unetBatch == 2 else { throw PipelineError.invalidGuidanceBatch(unetBatch) }
        var timings = StageTimings()
        let total = sampler.timesteps.count
        let start = clock.now()
        func check() throws {
            if cancellation?.isCancelled == true || Task.isCancelled { throw PipelineError.cancelled }
        }

        // 1. tokenize
        try check()
        let (ids, tokenizerMs) = clock.measure { (tokenizer.encode(request.prompt), guided ? tokenizer.encode(request.negativePrompt) : nil) }
        timings.tokenizerMs = tokenizerMs

        // 2. text encoder: (1, 77, D) -> (1, D, 1, 77)
        let (hidden, textMs) = try clock.measure { () throws -> (cond: Tensor, uncond: Tensor?) in
            let cond = try encode(ids.0)
            return (cond, try ids.1.map(encode))
        }
        timings.textEncoderMs = textMs
        try check()
        progress?(GenerationProgress(stage: .textEncoder, step: 0, totalSteps: total, timings: timings))

        // 3. denoise from seeded noise
        var generator = TorchRandomSource(seed: request.seed)
        var latents = generator.normalTensor(shape: description.latentShape)
        for (index, t) in sampler.timesteps.enumerated() {
            try check()
            let (prediction, stepMs) = try clock.measure {
                try predict(latents, t: t, hidden: hidden, guided: guided, scale: Float(scale), unetBatch: unetBatch)
            }
            latents = try sampler.step(modelOutput: prediction, sample: latents, timestep: t,
                                       previousTimestep: sampler.previousTimestep(after: index)).previous
            timings.unetStepMs.append(stepMs)
            progress?(GenerationProgress(stage: .unet, step: index + 1, totalSteps: total, timings: timings))
        }

        // 4. decode latents / scale_factor
        try check()
        let (image, decoderMs) = try clock.measure {
            try backend.decode(latents: latents.scaled(by: 1 / Float(description.latent.scaleFactor)))
        }
        timings.decoderMs = decoderMs
        timings.endToEndMs = clock.now() - start
        progress?(GenerationProgress(stage: .done, step: total, totalSteps: total, timings: timings))
        return GenerationResult(latents: latents, image: image, timings: timings, timesteps: sampler.timesteps)
    }

    private func encode(_ ids: [Int]) throws -> Tensor {
        let hidden = try backend.encodeText(tokenIDs: ids.map { Int32($0) })
        guard hidden.shape.count == 3, hidden.shape[0] == 1, hidden.shape[1] == ids.count else {
            throw PipelineError.unexpectedShape(what: "last_hidden_state", expected: [1, ids.count, hidden.shape.last ?? 0], got: hidden.shape)
        }
        return try hidden.sequenceToChannelsFirst()
    }

    /// The guided model prediction at `t`: one batch-2 call `[uncond, cond]`, two batch-1 calls,
    /// or (no guidance) the conditional prediction alone, in the batch the UNet was converted for.
    private func predict(_ z: Tensor, t: Int, hidden: (cond: Tensor, uncond: Tensor?), guided: Bool,
                         scale: Float, unetBatch: Int) throws -> Tensor {
        let timestep = Float(t)
        func call(_ sample: Tensor, _ states: Tensor) throws -> Tensor {
            let out = try backend.predictNoise(sample: sample, timestep: [Float](repeating: timestep, count: sample.batch),
                                               encoderHiddenStates: states)
            guard out.shape == sample.shape else {
                throw PipelineError.unexpectedShape(what: "noise_pred", expected: sample.shape, got: out.shape)
            }
            return out
        }
        guard guided, let uncond = hidden.uncond else {
            if unetBatch == 2 {  // the UNet takes exactly two samples: run the conditional one twice
                let out = try call(Tensor.concatenateBatch([z, z]), Tensor.concatenateBatch([hidden.cond, hidden.cond]))
                return try out.batchItem(1)
            }
            return try call(z, hidden.cond)
        }
        let unconditional: Tensor
        let conditional: Tensor
        if unetBatch == 2 {
            let out = try call(Tensor.concatenateBatch([z, z]), Tensor.concatenateBatch([uncond, hidden.cond]))
            (unconditional, conditional) = (try out.batchItem(0), try out.batchItem(1))
        } else {
            (unconditional, conditional) = (try call(z, uncond), try call(z, hidden.cond))
        }
        return try DDIMSampler.guide(conditional: conditional, unconditional: unconditional, scale: scale)
    }
}
