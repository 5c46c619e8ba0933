#if canImport(CoreML)
import CoreML
import Foundation

/// Loads the single-block packages of `snapfusion-coreml export-blocks` for the latency-table
/// runner. Inputs are seeded standard-normal arrays of the blocks manifest's shapes, built once per block.
public final class CoreMLBlockBackend: BlockBackend {
    private let computeUnits: MLComputeUnits
    private let cache: CompiledModelCache

    /// A backend on `computeUnits`; compiled blocks are cached like pipeline models.
    public init(computeUnits: ComputeUnits, cache: CompiledModelCache = CompiledModelCache()) {
        self.computeUnits = computeUnits.mlComputeUnits
        self.cache = cache
    }

    public func loadBlock(_ block: BlocksManifest.Block, at url: URL) throws -> BlockPredictor {
        let model = ManagedModel(url: url, sha256: nil, computeUnits: computeUnits, cache: cache)
        try model.load()
        var generator = TorchRandomSource(seed: 0)
        var features: [String: MLFeatureValue] = [:]
        for input in block.inputs {
            features[input.name] = MLFeatureValue(multiArray: generator.normalTensor(shape: input.shape).multiArray)
        }
        return Predictor(model: model, inputs: try MLDictionaryFeatureProvider(dictionary: features))
    }

    private final class Predictor: BlockPredictor {
        let model: ManagedModel
        let inputs: MLFeatureProvider

        init(model: ManagedModel, inputs: MLFeatureProvider) {
            self.model = model
            self.inputs = inputs
        }

        func predict() throws {
            _ = try model.perform { try $0.prediction(from: inputs) }
        }

        deinit { model.unload() }
    }
}
#endif
