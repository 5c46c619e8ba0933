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

    /// A cache under `directory`, by default `defaultDirectory`.
    public init(directory: URL? = nil, maxEntries: Int = 6) {
        store = CompiledModelStore(directory: directory ?? Self.defaultDirectory, maxEntries: maxEntries)
    }

    /// `Library/Application Support/SnapFusionKit/CompiledModels`, excluded from backups.
    ///
    /// Not `Library/Caches`: iOS purges Caches when storage runs low, and a purged entry costs the
    /// next launch a compilation plus the Neural Engine's first specialization (up to a minute for
    /// a large UNet), at the moment the user wants an image. Application Support is never purged;
    /// the store bounds the size instead (`maxEntries`, least recently used evicted), and the
    /// entries are excluded from iCloud and computer backups because they are rebuilt from the
    /// packages.
    public static var defaultDirectory: URL {
        let base = FileManager.default.urls(for: .applicationSupportDirectory, in: .userDomainMask)[0]
        var url = base.appendingPathComponent("SnapFusionKit/CompiledModels", isDirectory: true)
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        var values = URLResourceValues()
        values.isExcludedFromBackup = true
        try? url.setResourceValues(values)
        return url
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

    /// Removes every cached compilation (only the store's own entries).
    public func clear() throws {
        try store.clear()
    }
}
#endif
