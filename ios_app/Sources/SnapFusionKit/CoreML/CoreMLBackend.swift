#if canImport(CoreML)
import CoreML
import Foundation

/// Runs a converted folder with Core ML: TextEncoder, Unet (or UnetChunk1 + UnetChunk2) and
/// VAEDecoder, `.mlpackage` (compiled on first use and cached) or `.mlmodelc`.
///
/// ```swift
/// let backend = try CoreMLBackend(folder: folder, configuration: .init(computeUnits: .cpuAndNeuralEngine))
/// let pipeline = try Pipeline(folder: folder, backend: backend)
/// try backend.load()
/// let image = try pipeline.generate(GenerationRequest(prompt: "a red bicycle", seed: 1)).cgImage()
/// ```
public final class CoreMLBackend: DiffusionBackend, @unchecked Sendable {
    /// How models are loaded.
    public struct Configuration: Sendable {
        public var computeUnits: ComputeUnits
        /// Keep at most one model in memory: each is loaded when its stage starts and the others
        /// are released (the UNet stays loaded for all steps). Slower, but fits low-memory devices.
        public var reduceMemory: Bool
        /// Where compiled `.mlpackage`s are cached.
        public var cache: CompiledModelCache

        /// Defaults: CPU + Neural Engine, everything resident, the standard cache.
        public init(computeUnits: ComputeUnits = .cpuAndNeuralEngine, reduceMemory: Bool = false,
                    cache: CompiledModelCache = CompiledModelCache()) {
            self.computeUnits = computeUnits
            self.reduceMemory = reduceMemory
            self.cache = cache
        }
    }

    public let configuration: Configuration
    public let description: PipelineDescription
    private let textEncoder: ManagedModel
    /// One model, or the chunks in execution order.
    private let unet: [ManagedModel]
    private let decoder: ManagedModel
    private var all: [ManagedModel] { [textEncoder] + unet + [decoder] }

    /// Prepares the models of `folder` (reads pipeline.json, checks files; loads nothing).
    public init(folder: URL, configuration: Configuration = .init()) throws {
        let description = try PipelineDescription.load(from: folder)
        self.description = description
        self.configuration = configuration
        let mlConfiguration = MLModelConfiguration()
        mlConfiguration.computeUnits = configuration.computeUnits.mlComputeUnits
        func managed(_ name: PipelineDescription.ComponentName) throws -> [ManagedModel] {
            let source = folder.appendingPathComponent(ResourceNames.pipeline).path
            guard let component = description.component(name) else {
                throw PipelineDescriptionError.missingComponent(name.rawValue, source)
            }
            guard !component.files.isEmpty else {
                throw PipelineDescriptionError.malformed(source, "component \"\(name.rawValue)\" names no file")
            }
            return component.files.map {
                ManagedModel(url: folder.appendingPathComponent($0), sha256: component.sha256,
                             configuration: mlConfiguration, cache: configuration.cache)
            }
        }
        textEncoder = try managed(.textEncoder)[0]
        unet = try managed(.unet)
        decoder = try managed(.decoder)[0]
    }

    /// Loads every model (compiling packages on first use). In reduce-memory mode it only
    /// compiles; each stage then loads its own model.
    public func load() throws {
        for model in all {
            if configuration.reduceMemory { try model.compile() } else { try model.load() }
        }
    }

    /// Releases every model.
    public func unload() {
        all.forEach { $0.unload() }
    }

    /// Loads and unloads each model once so the first generation does not pay the device's
    /// first-load specialization.
    public func prewarm() throws {
        for model in all { try model.prewarm() }
    }

    public func encodeText(tokenIDs: [Int32]) throws -> Tensor {
        try resident(textEncoder)
        return try textEncoder.perform { model in
            let ids = try Self.tokenInput(tokenIDs, for: model)
            let provider = try MLDictionaryFeatureProvider(dictionary: [ResourceNames.textEncoderInput: ids])
            return try Self.output(ResourceNames.textEncoderOutput, of: model.prediction(from: provider), model: "TextEncoder")
        }
    }

    public func predictNoise(sample: Tensor, timestep: [Float], encoderHiddenStates: Tensor) throws -> Tensor {
        try resident(unet)
        let inputs: [String: MLMultiArray] = [
            ResourceNames.unetSample: sample.multiArray,
            ResourceNames.unetTimestep: Tensor(validShape: [timestep.count], scalars: timestep).multiArray,
            ResourceNames.unetHiddenStates: encoderHiddenStates.multiArray,
        ]
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

    public func decode(latents: Tensor) throws -> Tensor {
        try resident(decoder)
        let image = try decoder.perform { model in
            let provider = try MLDictionaryFeatureProvider(dictionary: [ResourceNames.decoderInput: latents.multiArray])
            return try Self.output(ResourceNames.decoderOutput, of: model.prediction(from: provider), model: "VAEDecoder")
        }
        if configuration.reduceMemory { decoder.unload() }
        return image
    }

    /// In reduce-memory mode, releases every model except `models` before a stage runs.
    private func resident(_ models: ManagedModel...) throws {
        try resident(models)
    }

    private func resident(_ models: [ManagedModel]) throws {
        guard configuration.reduceMemory else { return }
        for model in all where !models.contains(where: { $0 === model }) { model.unload() }
    }

    /// Token ids as the text encoder declares them: int32 (this project) or float32 (Apple's).
    private static func tokenInput(_ ids: [Int32], for model: MLModel) throws -> MLMultiArray {
        let constraint = model.modelDescription.inputDescriptionsByName[ResourceNames.textEncoderInput]?.multiArrayConstraint
        let shape = [1, ids.count]
        if constraint?.dataType == .float32 {
            return MLMultiArray(MLShapedArray<Float>(scalars: ids.map { Float($0) }, shape: shape))
        }
        return MLMultiArray(MLShapedArray<Int32>(scalars: ids, shape: shape))
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
    case missingInputShape(String, block: String)
    case imageConversionFailed

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
        case let .missingInputShape(name, block):
            return "expected a shape for input \"\(name)\" of \(block) in manifest.json"
        case .imageConversionFailed:
            return "could not convert the decoded image to a CGImage"
        }
    }
}
#endif
