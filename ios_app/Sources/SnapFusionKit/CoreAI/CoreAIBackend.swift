#if canImport(CoreAI)
import CoreAI
import Foundation

/// Runs a Core AI folder (`snapfusion-coreml convert --format coreai`: TextEncoder.aimodel,
/// Unet.aimodel, VAEDecoder.aimodel, pipeline.json components of `format` "coreai") with Apple's
/// Core AI framework, iOS / iPadOS / macOS 27. Core ML folders keep `CoreMLBackend` (iOS 16-26);
/// `ConvertedFolder.format()` tells which one a folder needs.
///
/// ```swift
/// let folder = try ConvertedFolder(url: url)
/// let backend = try CoreAIBackend(folder: folder)
/// try await backend.prepare()      // Core AI specializes each asset for this device (cached)
/// let pipeline = try Pipeline(folder: folder, backend: backend)
/// ```
///
/// Core AI runs asynchronously while `DiffusionBackend` is synchronous: each call waits for its
/// inference on a detached task, as `CoreMLBackend` waits for `MLModel.prediction`. Inputs are the
/// float32 arrays pipeline.json declares (token ids as float32, as the assets take them); outputs
/// are float32 by construction of the assets.
///
/// Written against Apple's Core AI documentation and type-checked on Linux against
/// scripts/apple-stubs/CoreAI.swift; it has not run on a device.
@available(iOS 27.0, macOS 27.0, *)
public final class CoreAIBackend: DiffusionBackend, @unchecked Sendable {
    public typealias ComponentName = PipelineDescription.ComponentName

    public let description: PipelineDescription
    private let urls: [ComponentName: URL]
    private let lock = NSLock()
    private var functions: [ComponentName: InferenceFunction] = [:]
    /// The one function every asset of `convert --format coreai` has.
    public static let functionName = "main"

    /// Resolves the folder's assets (loads nothing); refuses a Core ML folder and a folder with
    /// several sizes (its assets' functions are not named per size here).
    public init(folder: ConvertedFolder) throws {
        try folder.requireFormat(.coreAI)
        guard folder.description.sizes == nil else { throw CoreAIBackendError.severalSizes(folder.url.path) }
        description = folder.description
        var urls: [ComponentName: URL] = [:]
        for name in ComponentName.allCases where name != .encoder || folder.description.components.encoder != nil {
            guard let url = try folder.modelURLs(name).first else {
                throw PipelineDescriptionError.missingComponent(name.rawValue, folder.url.path)
            }
            urls[name] = url
        }
        self.urls = urls
    }

    /// Loads (and on first use specializes) every asset and its `main` function.
    public func prepare() async throws {
        for name in ComponentName.allCases where function(name) == nil {
            guard let url = urls[name] else { continue }
            let model = try await AIModel(contentsOf: url)
            guard let loaded = try model.loadFunction(named: Self.functionName) else {
                throw CoreAIBackendError.missingFunction(Self.functionName, model: url.lastPathComponent)
            }
            lock.withLock { functions[name] = loaded }
        }
    }

    public func load() throws {
        try Self.wait { [self] in try await prepare() }
    }

    public func unload() {
        lock.withLock { functions.removeAll() }
    }

    public func encodeText(tokenIDs: [Int32]) throws -> Tensor {
        let ids = tokenIDs.map { Float($0) }  // every CLIP id (<= 49407) is exact in float32
        return try run(.textEncoder, [ResourceNames.textEncoderInput: ([1, ids.count], ids)], output: ResourceNames.textEncoderOutput)
    }

    public func predictNoise(sample: Tensor, timestep: [Float], encoderHiddenStates: Tensor, timestepCond: Tensor?) throws -> Tensor {
        var inputs = [ResourceNames.unetSample: (sample.shape, sample.scalars),
                      ResourceNames.unetTimestep: ([timestep.count], timestep),
                      ResourceNames.unetHiddenStates: (encoderHiddenStates.shape, encoderHiddenStates.scalars)]
        // UNets with a guidance embedding (pipeline.json guidance.embedding) also take it.
        if let timestepCond {
            inputs[ResourceNames.unetTimestepCond] = (timestepCond.shape, timestepCond.scalars)
        }
        return try run(.unet, inputs, output: ResourceNames.unetOutput)
    }

    public func decode(latents: Tensor) throws -> Tensor {
        try run(.decoder, [ResourceNames.decoderInput: (latents.shape, latents.scalars)], output: ResourceNames.decoderOutput)
    }

    /// VAEEncoder.aimodel: `z` -> `latent` (posterior mean and log-variance).
    public func encodeImage(_ image: Tensor) throws -> Tensor {
        guard urls[.encoder] != nil else { throw PipelineError.missingEncoder }
        return try run(.encoder, [ResourceNames.encoderInput: (image.shape, image.scalars)], output: ResourceNames.encoderOutput)
    }

    private func function(_ name: ComponentName) -> InferenceFunction? {
        lock.withLock { functions[name] }
    }

    /// Runs `name`'s function on float32 inputs (name -> (shape, scalars)); `output` as a Tensor.
    private func run(_ name: ComponentName, _ inputs: [String: ([Int], [Float])], output: String) throws -> Tensor {
        if function(name) == nil { try load() }
        guard let function = function(name) else { throw CoreAIBackendError.notLoaded(name.rawValue) }
        let model = urls[name]?.lastPathComponent ?? name.rawValue
        return try Self.wait {
            var arrays: [String: NDArray] = [:]
            for (key, value) in inputs { arrays[key] = NDArray(scalars: value.1, shape: value.0) }
            var outputs = try await function.run(inputs: arrays)
            guard let value = outputs.remove(output), let array = value.ndArray else {
                throw CoreAIBackendError.missingOutput(output, model: model)
            }
            return try Self.tensor(array, name: output)
        }
    }

    /// A float32 array's scalars in row-major order, read through its strides.
    static func tensor(_ array: NDArray, name: String) throws -> Tensor {
        guard array.scalarType == .float32 else { throw CoreAIBackendError.unsupportedOutputType(name) }
        return array.rawView().withUnsafeBytes { pointer, shapeSpan, strideSpan in
            let shape = (0..<shapeSpan.count).map { shapeSpan[$0] }
            let strides = (0..<strideSpan.count).map { strideSpan[$0] }
            let base = pointer.assumingMemoryBound(to: Float.self)
            let count = shape.reduce(1, *)
            var scalars = [Float](repeating: 0, count: count)
            for index in 0..<count {
                var rest = index, offset = 0
                for axis in stride(from: shape.count - 1, through: 0, by: -1) {
                    offset += (rest % shape[axis]) * strides[axis]
                    rest /= shape[axis]
                }
                scalars[index] = base[offset]
            }
            return Tensor(validShape: shape, scalars: scalars)
        }
    }

    /// Runs `body` on a detached task and waits for it (the synchronous `DiffusionBackend` calls).
    private static func wait<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
        let box = ResultBox<T>()
        let done = DispatchSemaphore(value: 0)
        Task.detached {
            do { box.result = .success(try await body()) } catch { box.result = .failure(error) }
            done.signal()
        }
        done.wait()
        guard let result = box.result else { throw CoreAIBackendError.notLoaded("result") }
        return try result.get()
    }
}

/// The result of a detached task, read after its semaphore is signalled.
private final class ResultBox<T>: @unchecked Sendable {
    var result: Result<T, any Error>?
}

/// Errors of the Core AI backend.
public enum CoreAIBackendError: LocalizedError, Equatable {
    case missingFunction(String, model: String)
    case missingOutput(String, model: String)
    case unsupportedOutputType(String)
    case notLoaded(String)
    case severalSizes(String)

    public var errorDescription: String? {
        switch self {
        case let .missingFunction(name, model):
            return "expected \(model) to have a function \"\(name)\"; was it written by `snapfusion-coreml convert --format coreai`?"
        case let .missingOutput(name, model):
            return "expected \(model) to return \"\(name)\"; was it written by `snapfusion-coreml convert --format coreai`?"
        case let .unsupportedOutputType(name):
            return "expected a float32 output \"\(name)\", got another scalar type"
        case let .notLoaded(name):
            return "Core AI model \(name) is not loaded"
        case let .severalSizes(folder):
            return "CoreAIBackend runs folders of one image size; this one lists several (pipeline.json sizes, in \(folder))"
        }
    }
}
#endif
