import Foundation

/// Text to image (and image to image) over a `DiffusionBackend`: tokenize, encode the prompts,
/// sample from seeded noise (or from a starting image's VAE latent noised to the strength's
/// first timestep) with the sampler pipeline.json selects (DDIM, PNDM, DPM-Solver++, Euler,
/// Euler ancestral, LCM, TCD) and classifier-free guidance or a guidance embedding, decode.
///
/// ```swift
/// let folder = try ConvertedFolder(url: modelFolder)    // pipeline.json, read once
/// let backend = try CoreMLBackend(folder: folder)
/// let pipeline = try Pipeline(folder: folder, backend: backend)
/// try backend.load()
/// let run = pipeline.start(GenerationRequest(prompt: "a photo of an astronaut", seed: 42), previewEvery: 2)
/// for await progress in run.progress { print(progress.stage, progress.step, progress.totalSteps) }
/// let result = try await run.result
/// ```
///
/// `Pipeline` is immutable and `Sendable`: share one instance (and so one copy of the models)
/// between every screen of an app. Generations on one pipeline should not overlap (the backend
/// serializes model calls, so they would only slow each other down).
public final class Pipeline: Sendable {
    /// What to do when a component returns NaN or infinity.
    public enum NonFiniteRecovery: Sendable, Equatable {
        /// Throw `PipelineError.nonFiniteOutput` naming the component and step.
        case fail
        /// Move that component to `.cpuAndGPU` (when the backend supports it,
        /// `ComputeUnitFallback`) and run the call again once; throw if it is still not finite.
        case retryOnCPUAndGPU
    }

    /// The folder's pipeline.json.
    public let description: PipelineDescription
    public let tokenizer: CLIPTokenizer
    public let backend: any DiffusionBackend
    /// Source of the stage timings.
    public let clock: any MillisecondClock
    /// The NaN/infinity policy for text encoder, UNet and decoder outputs.
    public let nonFiniteRecovery: NonFiniteRecovery

    /// A pipeline over an already-read description and tokenizer.
    public init(description: PipelineDescription, tokenizer: CLIPTokenizer, backend: any DiffusionBackend,
                clock: any MillisecondClock = MonotonicClock(), nonFiniteRecovery: NonFiniteRecovery = .fail) {
        self.description = description
        self.tokenizer = tokenizer
        self.backend = backend
        self.clock = clock
        self.nonFiniteRecovery = nonFiniteRecovery
    }

    /// A pipeline over an opened converted folder: its description and its tokenizer files.
    public convenience init(folder: ConvertedFolder, backend: any DiffusionBackend, clock: any MillisecondClock = MonotonicClock(),
                            nonFiniteRecovery: NonFiniteRecovery = .fail) throws {
        self.init(description: folder.description, tokenizer: try folder.makeTokenizer(), backend: backend, clock: clock,
                  nonFiniteRecovery: nonFiniteRecovery)
    }

    /// Starts one generation in a detached task and returns its progress stream and result.
    ///
    /// - Parameter previewEvery: decode the current estimate of the final image every this many
    ///   UNet steps (0: never; each preview costs one decoder call, in reduce-memory mode also a
    ///   swap of UNet and decoder, and is not part of the step timings).
    public func start(_ request: GenerationRequest, previewEvery: Int = 0) -> GenerationRun {
        let (stream, continuation) = AsyncStream.makeStream(of: GenerationProgress.self)
        let task = Task.detached(priority: .userInitiated) { [self] in
            defer { continuation.finish() }
            return try generate(request, previewEvery: previewEvery) { continuation.yield($0) }
        }
        return GenerationRun(progress: stream, task: task)
    }

    /// Generates one image without blocking the caller; cancelling the calling task stops the
    /// generation at the next step. Use `start(_:previewEvery:)` to observe progress.
    public func generate(_ request: GenerationRequest) async throws -> GenerationResult {
        let run = start(request)
        return try await withTaskCancellationHandler {
            try await run.result
        } onCancel: {
            run.cancel()
        }
    }

    /// Whether guidance scale `scale` runs classifier-free guidance: diffusers' rule, w > 1. For
    /// w <= 1 (0 < w < 1 included) the conditional prediction is used alone. Python twin:
    /// `guidance.uses_guidance` (snapfusion_coreml/guidance.py); tests/golden/sampler.json pins both.
    public static func usesGuidance(_ scale: Double) -> Bool { scale > 1 }

    /// Generates one image on the calling thread. The backend must be loaded (or load on demand).
    ///
    /// - Parameters:
    ///   - cancellation: checked before every stage and step, together with `Task.isCancelled`.
    ///   - previewEvery: as in `start(_:previewEvery:)`.
    ///   - progress: called after the text encoder, after every UNet step, before decoding and
    ///     when done.
    /// - Throws: `PipelineError.cancelled` when cancelled, `PipelineError.nonFiniteOutput` for NaN
    ///   or infinity in a model output; before any model runs, `PipelineError.unsupportedImageSize`
    ///   for a size the folder lacks and, for image-to-image, `.missingEncoder`,
    ///   `.strengthOutOfRange`, `.noStepsLeft` or `.initImageSize`; or the backend's errors.
    public func generate(_ request: GenerationRequest, cancellation: CancellationToken? = nil, previewEvery: Int = 0,
                         progress: ((GenerationProgress) -> Void)? = nil) throws -> GenerationResult {
        let steps = request.steps ?? description.sampler.defaultSteps
        var sampler = try description.makeSampler(steps: steps)
        // The size: its latent shape here, its package function in the backend (by the latent's shape).
        let size = try request.imageSize.map { try description.size(height: $0.height, width: $0.width) } ?? description.availableSizes[0]
        let latentShape = [1, description.latent.channels, size.latent.height, size.latent.width]
        // Image-to-image: checked before any model runs.
        var begin = 0
        if let image = request.initImage {
            guard description.components.encoder != nil else { throw PipelineError.missingEncoder }
            begin = try ImageToImage.beginIndex(steps: steps, strength: request.strength ?? GenerationRequest.defaultStrength)
            try image.checkPreparable(for: size.image)  // a size this platform cannot resample, before the text encoder
            try sampler.setBeginIndex(begin)
        } else if let strength = request.strength {
            throw PipelineError.strengthWithoutImage(strength)
        }
        let scale = request.guidanceScale ?? description.guidance.defaultScale
        // Guidance-distilled UNets take w as an embedding and never run classifier-free guidance
        // (diffusers: do_classifier_free_guidance needs time_cond_proj_dim None).
        let timestepCond = description.guidance.embedding.map { GuidanceEmbedding.embedding(guidanceScale: scale, dim: $0.dim) }
        let guided = timestepCond == nil && Pipeline.usesGuidance(scale)
        let unetBatch = description.guidance.unetBatch
        guard unetBatch == 1 || unetBatch == 2 else { throw PipelineError.invalidGuidanceBatch(unetBatch) }
        var timings = StageTimings()
        let unetTimesteps = Array(sampler.unetTimesteps[begin...])
        let total = unetTimesteps.count
        let start = clock.now()
        func check() throws {
            if cancellation?.isCancelled == true || Task.isCancelled { throw PipelineError.cancelled }
        }

        // 1. tokenize (the negative prompt is the unconditional one, used only with classifier-free
        //    guidance, as in diffusers' encode_prompt)
        try check()
        let (ids, tokenizerMs) = clock.measure { (tokenizer.encode(request.prompt), guided ? tokenizer.encode(request.negativePrompt) : nil) }
        timings.tokenizerMs = tokenizerMs

        // 2. text encoder: (1, L, D) -> (1, D, 1, L), L = tokenizer.max_length (CLIP: 77)
        let (hidden, textMs) = try clock.measure { () throws -> (cond: Tensor, uncond: Tensor?) in
            let cond = try encode(ids.0)
            return (cond, try ids.1.map(encode))
        }
        timings.textEncoderMs = textMs
        try check()
        progress?(GenerationProgress(stage: .textEncoder, step: 0, totalSteps: total, timings: timings))

        // 3. the start latents (1, C, h, w), h != w allowed, from one random stream that the
        //    sampler's own noise continues. Text-to-image: seeded noise x init_noise_sigma.
        //    Image-to-image (diffusers' prepare_latents): the encoder's posterior sampled with the
        //    first draw, noised with the second at timesteps[begin].
        var generator = TorchRandomSource(seed: request.seed)
        var latents: Tensor
        if let image = request.initImage {
            try check()
            let (moments, encoderMs) = try clock.measure { () throws -> Tensor in
                let pixels = try image.prepared(for: size.image).tensor()
                return try finite(.encoder, step: nil) { try backend.encodeImage(pixels) }
            }
            timings.imageEncoderMs = encoderMs
            let posteriorNoise = generator.normalTensor(shape: latentShape)
            let imageLatents = try ImageToImage.posteriorSample(moments: moments, noise: posteriorNoise,
                                                                scaleFactor: description.latent.scaleFactor)
            latents = try sampler.addNoise(to: imageLatents, noise: generator.normalTensor(shape: latentShape), index: begin)
            try check()
            progress?(GenerationProgress(stage: .imageEncoder, step: 0, totalSteps: total, timings: timings))
        } else {
            latents = generator.normalTensor(shape: latentShape).scaled(by: Float(sampler.initNoiseSigma))
        }

        // 4. denoise: sampler calls begin..<count, their lists indexed as in a whole run
        for (offset, t) in unetTimesteps.enumerated() {
            try check()
            let index = begin + offset
            let step = offset + 1
            let input = sampler.scaleModelInput(latents, index: index)
            let (prediction, stepMs) = try clock.measure {
                try predict(input, t: Float(t), step: step, hidden: hidden, guided: guided, scale: Float(scale),
                            unetBatch: unetBatch, timestepCond: timestepCond)
            }
            let stepped = try sampler.step(index: index, modelOutput: prediction, sample: latents, random: &generator)
            latents = stepped.previous
            timings.unetStepMs.append(stepMs)
            var preview: RGBAImage?
            if previewEvery > 0, step % previewEvery == 0, step < total {
                try check()
                preview = try RGBAImage(image: try decodeChecked(stepped.predictedOriginal, step: step))
            }
            progress?(GenerationProgress(stage: .unet, step: step, totalSteps: total, timings: timings, preview: preview))
        }

        // 5. decode latents / scale_factor
        try check()
        progress?(GenerationProgress(stage: .decoder, step: total, totalSteps: total, timings: timings))
        let (image, decoderMs) = try clock.measure { try decodeChecked(latents, step: nil) }
        timings.decoderMs = decoderMs
        timings.endToEndMs = clock.now() - start
        progress?(GenerationProgress(stage: .done, step: total, totalSteps: total, timings: timings))
        return GenerationResult(latents: latents, image: image, timings: timings, timesteps: unetTimesteps)
    }

    /// Runs `body` (one model call) and applies the NaN/infinity policy to its output.
    private func finite(_ component: PipelineDescription.ComponentName, step: Int?, _ body: () throws -> Tensor) throws -> Tensor {
        let output = try body()
        if output.isFinite { return output }
        guard nonFiniteRecovery == .retryOnCPUAndGPU, let fallback = backend as? any ComputeUnitFallback,
              try fallback.fallBackToCPUAndGPU(component) else {
            throw PipelineError.nonFiniteOutput(component: component, step: step, count: output.nonFiniteCount, retried: false)
        }
        let again = try body()
        guard again.isFinite else {
            throw PipelineError.nonFiniteOutput(component: component, step: step, count: again.nonFiniteCount, retried: true)
        }
        return again
    }

    /// The decoder on `latents / scale_factor`.
    private func decodeChecked(_ latents: Tensor, step: Int?) throws -> Tensor {
        let z = latents.scaled(by: 1 / Float(description.latent.scaleFactor))
        return try finite(.decoder, step: step) { try backend.decode(latents: z) }
    }

    private func encode(_ ids: [Int]) throws -> Tensor {
        let hidden = try finite(.textEncoder, step: nil) { try backend.encodeText(tokenIDs: ids.map { Int32($0) }) }
        guard hidden.shape.count == 3, hidden.shape[0] == 1, hidden.shape[1] == ids.count else {
            throw PipelineError.unexpectedShape(what: "last_hidden_state", expected: [1, ids.count, hidden.shape.last ?? 0], got: hidden.shape)
        }
        return try hidden.sequenceToChannelsFirst()
    }

    /// The guided model prediction at `timestep`: one batch-2 call `[uncond, cond]`, two batch-1
    /// calls, or (no guidance, or a guidance embedding in `timestepCond` `(1, D)`) the conditional
    /// prediction alone, in the batch the UNet was converted for.
    private func predict(_ z: Tensor, t timestep: Float, step: Int, hidden: (cond: Tensor, uncond: Tensor?), guided: Bool,
                         scale: Float, unetBatch: Int, timestepCond: Tensor?) throws -> Tensor {
        func call(_ sample: Tensor, _ states: Tensor) throws -> Tensor {
            let cond = try timestepCond.map { try Tensor.concatenateBatch([Tensor](repeating: $0, count: sample.batch)) }
            let out = try finite(.unet, step: step) {
                try backend.predictNoise(sample: sample, timestep: [Float](repeating: timestep, count: sample.batch),
                                         encoderHiddenStates: states, timestepCond: cond)
            }
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

/// One generation started with `Pipeline.start(_:previewEvery:)`.
public struct GenerationRun: Sendable {
    /// Every progress report in order; finishes when the generation ends (also on error or
    /// cancellation).
    public let progress: AsyncStream<GenerationProgress>
    private let task: Task<GenerationResult, any Error>

    init(progress: AsyncStream<GenerationProgress>, task: Task<GenerationResult, any Error>) {
        self.progress = progress
        self.task = task
    }

    /// The generated image; throws `PipelineError.cancelled` after `cancel()`.
    public var result: GenerationResult {
        get async throws { try await task.value }
    }

    /// Stops the generation at the next step.
    public func cancel() {
        task.cancel()
    }
}
