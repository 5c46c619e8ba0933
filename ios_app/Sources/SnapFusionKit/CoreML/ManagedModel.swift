#if canImport(CoreML)
import CoreML
import Foundation

/// One Core ML model that can be loaded, unloaded and moved to other compute units; access is
/// serialized on a private queue.
public final class ManagedModel: LoadableModel, @unchecked Sendable {
    /// The package or compiled model in the converted folder.
    public let sourceURL: URL
    /// sha256 from pipeline.json (the compile cache key).
    public let sha256: String?
    private let cache: CompiledModelCache
    private let queue: DispatchQueue
    private var computeUnits: MLComputeUnits
    /// The function of a multifunction package to load (`MLModelConfiguration.functionName`); nil: the default one.
    private var functionName: String?
    private var compiledURL: URL?
    private var model: MLModel?

    /// A model that is not loaded yet; `functionName` picks a function of a multifunction package
    /// (iOS 18 / macOS 15), nil the package's default.
    public init(url: URL, sha256: String?, computeUnits: MLComputeUnits, cache: CompiledModelCache, functionName: String? = nil) {
        self.sourceURL = url
        self.sha256 = sha256
        self.computeUnits = computeUnits
        self.functionName = functionName
        self.cache = cache
        self.queue = DispatchQueue(label: "SnapFusionKit.ManagedModel.\(url.lastPathComponent)")
    }

    /// Whether the model is in memory.
    public var isLoaded: Bool { queue.sync { model != nil } }

    /// The compute units the model loads with.
    public var currentComputeUnits: MLComputeUnits { queue.sync { computeUnits } }

    /// Compiles (first use only) and loads the model.
    public func load() throws {
        try queue.sync { _ = try loadedModel() }
    }

    /// Compiles the package if needed without loading it (synchronous compiler).
    public func compile() throws {
        try queue.sync { _ = try compiled() }
    }

    /// Compiles the package if needed without loading it, with Core ML's asynchronous compiler.
    public func compile() async throws {
        if queue.sync(execute: { compiledURL }) != nil { return }
        let url = try await cache.compiledModel(for: sourceURL, sha256: sha256)
        queue.sync { compiledURL = url }
    }

    /// Releases the model without waiting: a load or prediction in progress on this model
    /// finishes first, then the model is released (the release is queued behind it), so this
    /// can be called from the main thread during a minute-long first load.
    public func unload() {
        queue.async { self.model = nil }
    }

    /// Releases the model and returns once it is released (after a prediction in progress).
    public func unloadNow() {
        queue.sync { model = nil }
    }

    /// Releases the model and loads it on `units` from now on. Returns false when it already
    /// uses them.
    public func switchComputeUnits(to units: MLComputeUnits) -> Bool {
        queue.sync {
            guard computeUnits != units else { return false }
            computeUnits = units
            model = nil
            return true
        }
    }

    /// The function the model loads (nil: the package's default).
    public var currentFunctionName: String? { queue.sync { functionName } }

    /// Releases the model and loads function `name` from now on (one size of a multifunction
    /// package in memory at a time). Returns false when it already uses it.
    public func switchFunction(to name: String?) -> Bool {
        queue.sync {
            guard functionName != name else { return false }
            functionName = name
            model = nil
            return true
        }
    }

    /// Runs `body` with the loaded model (loading it first if needed).
    public func perform<R>(_ body: (MLModel) throws -> R) throws -> R {
        try queue.sync {
            try autoreleasepool { try body(try loadedModel()) }
        }
    }

    private func compiled() throws -> URL {
        // The cache may have evicted the entry since (another pipeline, the system purging Caches).
        if let compiledURL, FileManager.default.fileExists(atPath: compiledURL.path) { return compiledURL }
        let url = try cache.compiledModel(for: sourceURL, sha256: sha256)
        compiledURL = url
        return url
    }

    private func loadedModel() throws -> MLModel {
        if let model { return model }
        do {
            let configuration = MLModelConfiguration()
            configuration.computeUnits = computeUnits
            if let functionName {
                guard #available(iOS 18.0, macOS 15.0, *) else {
                    throw CoreMLBackendError.multifunctionNeedsNewerOS(sourceURL.lastPathComponent, function: functionName)
                }
                configuration.functionName = functionName
            }
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
