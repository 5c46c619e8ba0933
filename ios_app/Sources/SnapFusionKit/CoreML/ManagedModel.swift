#if canImport(CoreML)
import CoreML
import Foundation

/// One Core ML model that can be loaded, unloaded and prewarmed; access is serialized.
public final class ManagedModel: @unchecked Sendable {
    /// The package or compiled model in the converted folder.
    public let sourceURL: URL
    /// sha256 from pipeline.json (the compile cache key).
    public let sha256: String?
    private let configuration: MLModelConfiguration
    private let cache: CompiledModelCache
    private let queue: DispatchQueue
    private var compiledURL: URL?
    private var model: MLModel?

    /// A model that is not loaded yet.
    public init(url: URL, sha256: String?, configuration: MLModelConfiguration, cache: CompiledModelCache) {
        self.sourceURL = url
        self.sha256 = sha256
        self.configuration = configuration
        self.cache = cache
        self.queue = DispatchQueue(label: "SnapFusionKit.ManagedModel.\(url.lastPathComponent)")
    }

    /// Whether the model is in memory.
    public var isLoaded: Bool { queue.sync { model != nil } }

    /// Compiles (first use only) and loads the model.
    public func load() throws {
        try queue.sync { _ = try loadedModel() }
    }

    /// Compiles the package if needed without loading it.
    public func compile() throws {
        try queue.sync { _ = try compiled() }
    }

    /// Releases the model.
    public func unload() {
        queue.sync { model = nil }
    }

    /// Loads and unloads once: the device compiles and caches its specialized program, so
    /// the next load is fast (Apple's prewarm pattern for the Neural Engine).
    public func prewarm() throws {
        try queue.sync {
            _ = try loadedModel()
            model = nil
        }
    }

    /// Runs `body` with the loaded model (loading it first if needed).
    public func perform<R>(_ body: (MLModel) throws -> R) throws -> R {
        try queue.sync {
            try autoreleasepool { try body(try loadedModel()) }
        }
    }

    private func compiled() throws -> URL {
        if let compiledURL { return compiledURL }
        let url = try cache.compiledModel(for: sourceURL, sha256: sha256)
        compiledURL = url
        return url
    }

    private func loadedModel() throws -> MLModel {
        if let model { return model }
        do {
            let loaded = try MLModel(contentsOf: try compiled(), configuration: configuration)
            model = loaded
            return loaded
        } catch let error as CoreMLBackendError {
            throw error
        } catch {
            throw CoreMLBackendError.loadFailed(sourceURL.lastPathComponent, error.localizedDescription)
        }
    }
}
#endif
