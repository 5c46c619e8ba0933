#if canImport(CoreML)
import CoreML
import Foundation

/// Compiles `.mlpackage` files on first use and keeps the compiled `.mlmodelc` in the caches
/// directory, keyed by the package's sha256 from pipeline.json, so later launches load directly.
/// A `.mlmodelc` is used as it is.
///
/// Entries are complete or absent and stale ones are evicted (`CompiledModelStore`, which holds
/// all the file logic and is tested on Linux); this type only adds Core ML's compiler.
public struct CompiledModelCache: Sendable {
    /// Where compiled models live: `<directory>/<Name>-<sha256>/<Name>.mlmodelc`.
    public var directory: URL { store.directory }
    /// The file logic.
    public let store: CompiledModelStore

    /// A cache under `directory`, by default `Library/Caches/SnapFusionKit/CompiledModels`
    /// (the system may purge it; models are then compiled again).
    public init(directory: URL? = nil, maxEntries: Int = 6) {
        let directory = directory ?? FileManager.default.urls(for: .cachesDirectory, in: .userDomainMask)[0]
            .appendingPathComponent("SnapFusionKit/CompiledModels", isDirectory: true)
        store = CompiledModelStore(directory: directory, maxEntries: maxEntries)
    }

    /// The compiled model for `url`: `url` itself for a `.mlmodelc`, else the cached compilation
    /// of the `.mlpackage`, compiling it now (synchronously) if needed.
    ///
    /// - Parameter sha256: the package's sha256 from pipeline.json; without one the key is the
    ///   package path and modification date.
    public func compiledModel(for url: URL, sha256: String?) throws -> URL {
        if url.pathExtension == "mlmodelc" { return url }
        return try store.compiledModel(for: url, sha256: sha256) { package in
            do {
                return try MLModel.compileModel(at: package)
            } catch {
                throw CoreMLBackendError.compilationFailed(package.lastPathComponent, error.localizedDescription)
            }
        }
    }

    /// As `compiledModel(for:sha256:)` with Core ML's asynchronous compiler (iOS 16, macOS 13),
    /// which does not block a thread while compiling.
    public func compiledModel(for url: URL, sha256: String?) async throws -> URL {
        if url.pathExtension == "mlmodelc" { return url }
        return try await store.compiledModel(for: url, sha256: sha256) { package in
            do {
                return try await MLModel.compileModel(at: package)
            } catch {
                throw CoreMLBackendError.compilationFailed(package.lastPathComponent, error.localizedDescription)
            }
        }
    }

    /// Removes every cached compilation.
    public func clear() throws {
        try store.clear()
    }
}
#endif
