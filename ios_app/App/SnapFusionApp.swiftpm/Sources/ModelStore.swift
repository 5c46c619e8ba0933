import Foundation
import SnapFusionKit

/// Which converted folder the app uses (the one bundled in Sources/Model, or one the user picked
/// and the app copied into Application Support), and the one pipeline both tabs share, so the
/// models are in memory once.
@MainActor
final class ModelStore: ObservableObject {
    /// The folder in use, if any.
    @Published private(set) var folder: URL?
    /// Its pipeline.json.
    @Published private(set) var description: PipelineDescription?
    /// The folder in use, opened once (pipeline.json read and checked).
    private var opened: ConvertedFolder?
    /// Why no folder could be used, or what went wrong importing one.
    @Published var message: String?
    @Published var computeUnits: ComputeUnits = .cpuAndNeuralEngine
    @Published var reduceMemory = false
    /// Fraction of the bytes copied while a picked folder is imported; nil when not importing.
    @Published private(set) var importProgress: Double?

    private static let importedKey = "SnapFusionImportedModelFolder"
    private var shared: (key: String, pipeline: Pipeline, backend: CoreMLBackend)?

    init() {
        if let bundled = Self.bundledFolder(), (try? use(bundled)) != nil { return }
        if let name = UserDefaults.standard.string(forKey: Self.importedKey),
           let imported = try? Self.modelsDirectory().appendingPathComponent(name, isDirectory: true),
           (try? use(imported)) != nil { return }
        message = "No model yet: choose a folder written by `snapfusion-coreml convert`."
    }

    /// The pipeline for the current folder and settings, shared by every screen; rebuilt (and
    /// the previous models released) only when the folder or a setting changes.
    func pipeline() throws -> (pipeline: Pipeline, backend: CoreMLBackend) {
        guard let folder, let opened else { throw AppError.noModel }
        let key = "\(folder.path)|\(computeUnits.rawValue)|\(reduceMemory)"
        if let shared, shared.key == key { return (shared.pipeline, shared.backend) }
        shared?.backend.unload()
        shared = nil
        let backend = try CoreMLBackend(folder: opened, configuration: .init(computeUnits: computeUnits, reduceMemory: reduceMemory))
        let pipeline = try Pipeline(folder: opened, backend: backend, nonFiniteRecovery: .retryOnCPUAndGPU)
        shared = (key, pipeline, backend)
        return (pipeline, backend)
    }

    /// Releases the models (memory warning, app in the background); the next generation loads
    /// them again.
    func unloadModels() {
        shared?.backend.unload()
    }

    /// Copies a folder picked in the Files app into Application Support (so it stays readable
    /// without security-scoped access and survives the source being moved), with progress, then
    /// uses the copy. A folder that is not a complete converted folder, or whose files are still
    /// iCloud placeholders, is refused before copying.
    func importFolder(_ source: URL) async {
        guard importProgress == nil else { return }
        message = nil
        importProgress = 0
        defer { importProgress = nil }
        let scoped = source.startAccessingSecurityScopedResource()
        defer { if scoped { source.stopAccessingSecurityScopedResource() } }
        do {
            try FolderCopy.requireDownloaded(source)
            _ = try ConvertedFolder(url: source)
            let destination = try Self.modelsDirectory().appendingPathComponent(source.lastPathComponent, isDirectory: true)
            try await FolderCopy.copy(source, to: destination) { fraction in
                Task { @MainActor [weak self] in self?.importProgress = fraction }
            }
            shared?.backend.unload()
            shared = nil
            try use(destination)
            UserDefaults.standard.set(destination.lastPathComponent, forKey: Self.importedKey)
        } catch {
            message = error.localizedDescription
        }
    }

    private func use(_ url: URL) throws {
        let opened = try ConvertedFolder(url: url)
        self.opened = opened
        description = opened.description
        folder = url
        message = nil
    }

    private static func modelsDirectory() throws -> URL {
        let url = try FileManager.default.url(for: .applicationSupportDirectory, in: .userDomainMask, appropriateFor: nil, create: true)
            .appendingPathComponent("Models", isDirectory: true)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    private static func bundledFolder() -> URL? {
        for bundle in [Bundle.main, Bundle.module] {
            if let url = bundle.url(forResource: "Model", withExtension: nil),
               FileManager.default.fileExists(atPath: url.appendingPathComponent(PipelineDescription.fileName).path) {
                return url
            }
        }
        return nil
    }
}

/// Copies a folder file by file off the main thread, reporting the fraction of bytes copied.
/// The copy goes to a hidden sibling first and replaces `destination` only when complete, so an
/// interrupted import never leaves a partial model folder (and never destroys a previous copy).
enum FolderCopy {
    static func copy(_ source: URL, to destination: URL, progress: @escaping @Sendable (Double) -> Void) async throws {
        try await Task.detached(priority: .userInitiated) {
            let fileManager = FileManager.default
            let files = try regularFiles(in: source)
            let total = max(files.map(\.2).reduce(0, +), 1)
            let staging = destination.deletingLastPathComponent().appendingPathComponent(".\(destination.lastPathComponent).partial-\(UUID().uuidString)")
            defer { try? fileManager.removeItem(at: staging) }
            var copied: Int64 = 0
            for (url, relative, size) in files {
                try Task.checkCancellation()
                let target = staging.appendingPathComponent(relative)
                do {
                    try fileManager.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
                    try fileManager.copyItem(at: url, to: target)
                } catch {
                    throw ImportError.copyFailed(relative, error.localizedDescription)
                }
                copied += size
                progress(Double(copied) / Double(total))
            }
            if fileManager.fileExists(atPath: destination.path) {
                _ = try fileManager.replaceItemAt(destination, withItemAt: staging)
            } else {
                try fileManager.moveItem(at: staging, to: destination)
            }
        }.value
    }
}

extension FolderCopy {
    /// Throws `ImportError.notDownloaded` when files below `folder` are in iCloud Drive but not on
    /// the device, after asking iCloud to download them. iCloud Drive keeps such a file as a
    /// hidden placeholder `.<name>.icloud` (and reports a downloading status other than
    /// `.current`); copying it would copy the placeholder, and checking the folder would report a
    /// missing pipeline.json or package instead of the real cause.
    static func requireDownloaded(_ folder: URL) throws {
        let keys: [URLResourceKey] = [.isUbiquitousItemKey, .ubiquitousItemDownloadingStatusKey]
        guard let walker = FileManager.default.enumerator(at: folder, includingPropertiesForKeys: keys) else {
            throw ImportError.unreadable(folder.path)
        }
        var missing: [URL] = []
        for case let url as URL in walker {
            let name = url.lastPathComponent
            if name.hasPrefix("."), name.hasSuffix(".icloud"), name.count > ".icloud".count + 1 {
                let real = String(name.dropFirst().dropLast(".icloud".count))
                missing.append(url.deletingLastPathComponent().appendingPathComponent(real))
            } else if let values = try? url.resourceValues(forKeys: Set(keys)), values.isUbiquitousItem == true,
                      let status = values.ubiquitousItemDownloadingStatus, status != .current {
                missing.append(url)
            }
        }
        guard let first = missing.first else { return }
        for url in missing { try? FileManager.default.startDownloadingUbiquitousItem(at: url) }
        let relative = String(first.standardizedFileURL.path.dropFirst(folder.standardizedFileURL.path.count + 1))
        throw ImportError.notDownloaded(relative, count: missing.count)
    }

    /// Every regular file below `folder`: URL, path relative to `folder`, size in bytes.
    /// (Synchronous: directory enumerators cannot be iterated in an async context.)
    static func regularFiles(in folder: URL) throws -> [(URL, String, Int64)] {
        let keys: [URLResourceKey] = [.isRegularFileKey, .fileSizeKey]
        guard let walker = FileManager.default.enumerator(at: folder, includingPropertiesForKeys: keys) else {
            throw ImportError.unreadable(folder.path)
        }
        var files: [(URL, String, Int64)] = []
        for case let url as URL in walker {
            let values = try url.resourceValues(forKeys: Set(keys))
            guard values.isRegularFile == true else { continue }
            let relative = String(url.standardizedFileURL.path.dropFirst(folder.standardizedFileURL.path.count + 1))
            files.append((url, relative, Int64(values.fileSize ?? 0)))
        }
        return files
    }
}

/// Errors of the sample app.
enum AppError: LocalizedError {
    case noModel

    var errorDescription: String? {
        switch self {
        case .noModel: return "Choose a model folder first."
        }
    }
}

/// Errors importing a model folder.
enum ImportError: LocalizedError {
    case unreadable(String)
    case copyFailed(String, String)
    case notDownloaded(String, count: Int)

    var errorDescription: String? {
        switch self {
        case let .unreadable(path): return "could not read the folder \(path)"
        case let .notDownloaded(file, count):
            return "expected the model files on this device, got \(count) still in iCloud (first: \(file)); "
                + "they are downloading now: choose the folder again when the Files app shows them downloaded"
        case let .copyFailed(file, reason): return "could not copy \(file) into the app (is there enough free space?): \(reason)"
        }
    }
}
