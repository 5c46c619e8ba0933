#if canImport(CoreML)
import CoreML
import Foundation

/// Runs a converted folder with Core ML: TextEncoder, Unet (or UnetChunk1 + UnetChunk2),
/// VAEDecoder and, for image-to-image, VAEEncoder. For each, a compiled `.mlmodelc` next to the
/// `.mlpackage` named in pipeline.json is used when present; otherwise the package is compiled on
/// first use and cached.
///
/// Folders with `sizes` hold multifunction packages (iOS 18 / macOS 15): the UNet, decoder and
/// encoder load the function of the size their input has (`MLModelConfiguration.functionName`),
/// one size in memory at a time; a generation of another size reloads them with its function.
///
/// ```swift
/// let folder = try ConvertedFolder(url: url)
/// let backend = try CoreMLBackend(folder: folder, configuration: .init(computeUnits: .cpuAndNeuralEngine))
/// let pipeline = try Pipeline(folder: folder, backend: backend)
/// try await backend.compile()   // first launch only: Core ML's asynchronous compiler
/// try backend.load()
/// let image = try await pipeline.generate(GenerationRequest(prompt: "a red bicycle", seed: 1)).cgImage()
/// ```
///
/// Memory: see `ModelResidency` (normal mode keeps all three models resident after `load()`;
/// reduce-memory mode keeps one component at a time).
public final class CoreMLBackend: ComputeUnitFallback, ComputeUnitReporting, @unchecked Sendable {
    /// How models are loaded.
    public struct Configuration: Sendable {
        /// nil: the units the folder was converted for, `ModelCompatibility.recommendedComputeUnits(for:)`
        /// (`attention: "original"` -> `.cpuAndGPU`, else `.cpuAndNeuralEngine`).
        public var computeUnits: ComputeUnits?
        /// Keep at most one component in memory: each is loaded when its stage starts and the
        /// others are released (the UNet stays loaded for all steps). Slower, but fits
        /// low-memory devices.
        public var reduceMemory: Bool
        /// Where compiled `.mlpackage`s are cached.
        public var cache: CompiledModelCache

        /// Defaults: the compute units the folder's attention was converted for, everything
        /// resident, the standard cache.
        public init(computeUnits: ComputeUnits? = nil, reduceMemory: Bool = false,
                    cache: CompiledModelCache = CompiledModelCache()) {
            self.computeUnits = computeUnits
            self.reduceMemory = reduceMemory
            self.cache = cache
        }
    }

    public let configuration: Configuration
    public let description: PipelineDescription
    /// The compute units every model loads with at first (a component may later move to
    /// `.cpuAndGPU` after NaN, `computeUnitsInUse(_:)`).
    public let computeUnits: ComputeUnits
    /// Which models are in memory.
    public let residency: ModelResidency<ManagedModel>
    private var textEncoder: ManagedModel { residency.models(of: .textEncoder)[0] }
    /// One model, or the chunks in execution order.
    private var unet: [ManagedModel] { residency.models(of: .unet) }
    private var decoder: ManagedModel { residency.models(of: .decoder)[0] }
    private var encoder: ManagedModel? { residency.models(of: .encoder).first }

    /// Prepares the models of an opened folder (resolves each component's files; loads nothing).
    ///
    /// - Throws: `ModelCompatibilityError.deploymentTargetTooNew` when a component was converted
    ///   for a newer OS than this one, before anything is compiled or loaded.
    public init(folder: ConvertedFolder, configuration: Configuration = .init()) throws {
        try folder.requireFormat(.coreML)
        try ModelCompatibility.check(folder.description)
        self.description = folder.description
        self.configuration = configuration
        let units = configuration.computeUnits ?? ModelCompatibility.recommendedComputeUnits(for: folder.description)
        self.computeUnits = units
        // Size-dependent packages of a folder with `sizes` start on the default size's function.
        let defaultFunction = folder.description.sizes?.first?.function
        func managed(_ name: PipelineDescription.ComponentName) throws -> [ManagedModel] {
            let sha256 = folder.description.component(name)?.sha256
            return try folder.modelURLs(name).map { url in
                ManagedModel(url: url, sha256: sha256, computeUnits: units.mlComputeUnits,
                             cache: configuration.cache, functionName: name.isSizeDependent ? defaultFunction : nil)
            }
        }
        var components = [(PipelineDescription.ComponentName.textEncoder, try managed(.textEncoder))]
        if folder.description.components.encoder != nil { components.append((.encoder, try managed(.encoder))) }
        components += [(.unet, try managed(.unet)), (.decoder, try managed(.decoder))]
        residency = ModelResidency(components: components, reduceMemory: configuration.reduceMemory, onDemand: [.encoder])
    }

    /// Compiles every package that is not compiled yet with Core ML's asynchronous compiler and
    /// caches it; loads nothing. Optional: `load()` compiles synchronously what is missing.
    public func compile() async throws {
        for model in residency.allModels { try await model.compile() }
    }

    /// Makes the models ready: all of them, or in reduce-memory mode the text encoder only
    /// (compiling packages on first use).
    public func load() throws {
        try residency.load()
    }

    /// Releases every model.
    public func unload() {
        residency.unload()
    }

    /// Loads and releases each model that is not in memory, one at a time (the device caches
    /// its specialized program, so later loads are fast), then leaves the models as `load()`.
    public func prewarm() throws {
        try residency.prewarm()
    }

    /// The compute units `component` loads with now (after a NaN fallback: `.cpuAndGPU`).
    public func computeUnitsInUse(_ component: PipelineDescription.ComponentName) -> ComputeUnits? {
        residency.models(of: component).first.flatMap { ComputeUnits($0.currentComputeUnits) }
    }

    /// Moves `component` to `.cpuAndGPU` for the rest of this backend's life.
    public func fallBackToCPUAndGPU(_ component: PipelineDescription.ComponentName) throws -> Bool {
        var switched = false
        for model in residency.models(of: component) where model.switchComputeUnits(to: .cpuAndGPU) { switched = true }
        if switched { try residency.prepare(component) }
        return switched
    }

    public func encodeText(tokenIDs: [Int32]) throws -> Tensor {
        try residency.prepare(.textEncoder)
        return try textEncoder.perform { model in
            let ids = try Self.tokenInput(tokenIDs, for: model)
            let provider = try MLDictionaryFeatureProvider(dictionary: [ResourceNames.textEncoderInput: ids])
            return try Self.output(ResourceNames.textEncoderOutput, of: model.prediction(from: provider), model: "TextEncoder")
        }
    }

    public func predictNoise(sample: Tensor, timestep: [Float], encoderHiddenStates: Tensor, timestepCond: Tensor?) throws -> Tensor {
        try selectFunction(.unet, try latentFunction(sample))
        try residency.prepare(.unet)
        var inputs: [String: MLMultiArray] = [
            ResourceNames.unetSample: sample.multiArray,
            ResourceNames.unetTimestep: Tensor(validShape: [timestep.count], scalars: timestep).multiArray,
            ResourceNames.unetHiddenStates: encoderHiddenStates.multiArray,
        ]
        // Guidance-distilled UNets (pipeline.json guidance.embedding) also take the guidance embedding.
        if let timestepCond {
            inputs[ResourceNames.unetTimestepCond] = timestepCond.multiArray
        }
        // Chunk k takes whatever it names from the previous chunk's outputs, else from the UNet inputs.
        var available: [String: MLFeatureValue] = inputs.mapValues { MLFeatureValue(multiArray: $0) }
        var last: MLFeatureProvider?
        for chunk in unet {
            last = try chunk.perform { model in
                var features: [String: MLFeatureValue] = [:]
                for name in model.modelDescription.inputDescriptionsByName.keys {
                    guard let value = available[name] else {
                        throw CoreMLBackendError.missingInput(name, model: chunk.sourceURL.lastPathComponent)
                    }
                    features[name] = value
                }
                let result = try model.prediction(from: MLDictionaryFeatureProvider(dictionary: features))
                for name in result.featureNames {
                    if let value = result.featureValue(for: name) { available[name] = value }
                }
                return result
            }
        }
        guard let last else { throw CoreMLBackendError.missingOutput(ResourceNames.unetOutput, model: "Unet") }
        return try Self.output(ResourceNames.unetOutput, of: last, model: "Unet")
    }

    /// VAEEncoder: `z` (the image in [-1, 1]) -> `latent` (posterior mean and log-variance).
    public func encodeImage(_ image: Tensor) throws -> Tensor {
        guard let encoder else { throw PipelineError.missingEncoder }
        guard image.shape.count == 4 else { throw TensorError.rankMismatch(expected: 4, shape: image.shape) }
        try selectFunction(.encoder, try description.function(imageHeight: image.shape[2], width: image.shape[3]))
        try residency.prepare(.encoder)
        return try encoder.perform { model in
            let provider = try MLDictionaryFeatureProvider(dictionary: [ResourceNames.encoderInput: image.multiArray])
            return try Self.output(ResourceNames.encoderOutput, of: model.prediction(from: provider), model: "VAEEncoder")
        }
    }

    /// The function of the size whose latent `(B, C, h, w)` has this h and w (nil without `sizes`).
    private func latentFunction(_ latents: Tensor) throws -> String? {
        guard description.sizes != nil else { return nil }
        guard latents.shape.count == 4 else { throw TensorError.rankMismatch(expected: 4, shape: latents.shape) }
        return try description.function(latentHeight: latents.shape[2], width: latents.shape[3])
    }

    /// Moves `component`'s models to `function` (released now, loaded with it by the next
    /// `prepare`); nothing for folders without `sizes`.
    private func selectFunction(_ component: PipelineDescription.ComponentName, _ function: String?) throws {
        guard let function else { return }
        for model in residency.models(of: component) { _ = model.switchFunction(to: function) }
    }

    public func decode(latents: Tensor) throws -> Tensor {
        try selectFunction(.decoder, try latentFunction(latents))
        try residency.prepare(.decoder)
        return try decoder.perform { model in
            let provider = try MLDictionaryFeatureProvider(dictionary: [ResourceNames.decoderInput: latents.multiArray])
            return try Self.output(ResourceNames.decoderOutput, of: model.prediction(from: provider), model: "VAEDecoder")
        }
    }

    /// Token ids in the type the text encoder's model description declares: float32 (Apple's
    /// convention and newer folders) or int32 (older folders); ids <= 49407 are exact in float32.
    private static func tokenInput(_ ids: [Int32], for model: MLModel) throws -> MLMultiArray {
        let constraint = model.modelDescription.inputDescriptionsByName[ResourceNames.textEncoderInput]?.multiArrayConstraint
        let shape = [1, ids.count]
        switch TokenInputType(declared: constraint.flatMap { ScalarType($0.dataType) }) {
        case .float32:
            return MLMultiArray(MLShapedArray<Float>(scalars: ids.map { Float($0) }, shape: shape))
        case .int32:
            return MLMultiArray(MLShapedArray<Int32>(scalars: ids, shape: shape))
        }
    }

    private static func output(_ name: String, of provider: MLFeatureProvider, model: String) throws -> Tensor {
        guard let array = provider.featureValue(for: name)?.multiArrayValue else {
            throw CoreMLBackendError.missingOutput(name, model: model)
        }
        return try Tensor(array)
    }
}

/// Errors of the Core ML backend.
public enum CoreMLBackendError: LocalizedError, Equatable {
    case compilationFailed(String, String)
    case loadFailed(String, String)
    case missingInput(String, model: String)
    case missingOutput(String, model: String)
    case imageConversionFailed
    case unsupportedOutputType(String)
    /// A folder with `sizes` (multifunction packages) on an OS before iOS 18 / macOS 15.
    case multifunctionNeedsNewerOS(String, function: String)

    public var errorDescription: String? {
        switch self {
        case let .compilationFailed(file, reason):
            return "could not compile \(file): \(reason)"
        case let .loadFailed(file, reason):
            return "could not load \(file): \(reason)"
        case let .missingInput(name, model):
            return "\(model) expects an input \"\(name)\" that neither the UNet inputs nor the previous chunk provide"
        case let .missingOutput(name, model):
            return "expected \(model) to return \"\(name)\"; was the folder written by `snapfusion-coreml convert`?"
        case .imageConversionFailed:
            return "could not convert the decoded image to a CGImage"
        case let .unsupportedOutputType(type):
            return "expected a float16, float32, float64 or int32 model output, got \(type)"
        case let .multifunctionNeedsNewerOS(file, function):
            return "\(file) is a multifunction package (function \(function), one per image size), which needs iOS 18 or macOS 15; "
                + "convert the folder with one image size for this OS"
        }
    }
}
#endif
