#if canImport(CoreML)
import CoreML
import Foundation

/// Compiles `.mlpackage` files on first use and keeps the compiled `.mlmodelc` in the caches
/// directory, keyed by the package's sha256 from pipeline.json, so later launches load directly.
/// A `.mlmodelc` is used as it is.
public struct CompiledModelCache: Sendable {
    /// Where compiled models live: `<directory>/<key>/<Name>.mlmodelc`.
    public let directory: URL

    /// A cache under `directory`, by default `Library/Caches/SnapFusionKit/CompiledModels`
    /// (the system may purge it; models are then compiled again).
    public init(directory: URL? = nil) {
        self.directory = directory ?? FileManager.default.urls(for: .cachesDirectory, in: .userDomainMask)[0]
            .appendingPathComponent("SnapFusionKit/CompiledModels", isDirectory: true)
    }

    /// The compiled model for `url`: `url` itself for a `.mlmodelc`, else the cached compilation
    /// of the `.mlpackage`, compiling it now if needed.
    ///
    /// - Parameter sha256: the package's sha256 from pipeline.json; without one the key is the
    ///   package path and modification date.
    public func compiledModel(for url: URL, sha256: String?) throws -> URL {
        if url.pathExtension == "mlmodelc" { return url }
        let name = url.deletingPathExtension().lastPathComponent
        let target = directory.appendingPathComponent(try key(for: url, sha256: sha256), isDirectory: true)
            .appendingPathComponent("\(name).mlmodelc", isDirectory: true)
        let fileManager = FileManager.default
        if fileManager.fileExists(atPath: target.path) { return target }
        let compiled: URL
        do {
            compiled = try MLModel.compileModel(at: url)
        } catch {
            throw CoreMLBackendError.compilationFailed(url.lastPathComponent, error.localizedDescription)
        }
        try fileManager.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
        // Another process may have finished first; keep whichever copy is in place.
        if fileManager.fileExists(atPath: target.path) {
            try? fileManager.removeItem(at: compiled)
        } else {
            try fileManager.moveItem(at: compiled, to: target)
        }
        return target
    }

    /// Removes every cached compilation.
    public func clear() throws {
        if FileManager.default.fileExists(atPath: directory.path) {
            try FileManager.default.removeItem(at: directory)
        }
    }

    private func key(for url: URL, sha256: String?) throws -> String {
        if let sha256, sha256.count == 64, sha256.allSatisfy(\.isHexDigit) {
            return "\(sha256.lowercased())-\(url.deletingPathExtension().lastPathComponent)"
        }
        let attributes = try FileManager.default.attributesOfItem(atPath: url.path)
        let modified = (attributes[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
        let readable = url.path.map { $0.isLetter || $0.isNumber ? $0 : "_" }
        return "\(String(readable).suffix(80))-\(Int(modified))"
    }
}
#endif
