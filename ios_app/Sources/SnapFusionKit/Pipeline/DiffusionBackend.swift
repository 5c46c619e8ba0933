/// The models of a text-to-image (and image-to-image) pipeline, behind one protocol so the orchestration,
/// the sampler and the benchmark harness run anywhere (Core ML on Apple platforms, the Python
/// interpreter over a pipe in snapfusion-cli, a fake model in the Linux tests).
///
/// Shapes follow docs/contracts.md section 1. Folders with `sizes` (several image sizes, one
/// package function each) need no extra argument: a backend runs the UNet, decoder and encoder
/// function of the size whose latent (encoder: image) height and width the input has
/// (`PipelineDescription.function(latentHeight:width:)`). Calls are synchronous and may be slow; the
/// pipeline calls them from the task that generates, one call at a time. Implementations are
/// `Sendable`: one backend may be shared by several screens of an app.
public protocol DiffusionBackend: AnyObject, Sendable {
    /// Makes the models ready (compiling on first use if needed). Called again after `unload()`.
    func load() throws
    /// Releases the models' memory; `load()` brings them back.
    func unload()
    /// Text encoder: ids `(1, 77)` -> `last_hidden_state` `(1, 77, D)`.
    func encodeText(tokenIDs: [Int32]) throws -> Tensor
    /// UNet: `sample` `(B, 4, h, w)`, `timestep` `(B,)`, `encoder_hidden_states` `(B, D, 1, 77)`
    /// and, for guidance-distilled UNets (pipeline.json `guidance.embedding`), `timestep_cond`
    /// `(B, D')` -> the raw prediction `(B, 4, h, w)` (v or epsilon). `timestepCond` is nil for
    /// every other UNet.
    func predictNoise(sample: Tensor, timestep: [Float], encoderHiddenStates: Tensor, timestepCond: Tensor?) throws -> Tensor
    /// Decoder: `z` `(1, 4, h, w)` (already divided by the latent scale factor) -> image
    /// `(1, 3, 8h, 8w)` in [-1, 1].
    func decode(latents: Tensor) throws -> Tensor
    /// VAE encoder (image-to-image): image `z` `(1, 3, H, W)` in [-1, 1] -> `latent`
    /// `(1, 2C, H/8, W/8)`, the posterior's mean (channels 0..<C) then log-variance.
    func encodeImage(_ image: Tensor) throws -> Tensor
}

extension DiffusionBackend {
    /// Backends without a VAE encoder (text-to-image only) throw `PipelineError.missingEncoder`.
    public func encodeImage(_ image: Tensor) throws -> Tensor {
        throw PipelineError.missingEncoder
    }

    /// The UNet of a model without a guidance embedding.
    public func predictNoise(sample: Tensor, timestep: [Float], encoderHiddenStates: Tensor) throws -> Tensor {
        try predictNoise(sample: sample, timestep: timestep, encoderHiddenStates: encoderHiddenStates, timestepCond: nil)
    }
}

/// A backend that can move one component to other compute units after it produced NaN or
/// infinity, so the pipeline can run that call again (`Pipeline.NonFiniteRecovery`).
///
/// fp16 overflow on the Neural Engine is the usual cause; the GPU computes some ops (softmax,
/// normalization) with more headroom.
public protocol ComputeUnitFallback: DiffusionBackend {
    /// Reloads `component` on `.cpuAndGPU`. Returns false when it already runs there (nothing
    /// to retry).
    func fallBackToCPUAndGPU(_ component: PipelineDescription.ComponentName) throws -> Bool
}
