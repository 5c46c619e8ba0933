import Foundation
import SnapFusionKit
import UIKit

/// Which converted folder the app uses (one the user imported into Application Support, else
/// the one bundled in Sources/Model), and the one pipeline both tabs share, so the models are in
/// memory once. Generate and Benchmark take turns on it (`begin(_:)`): a benchmark next to a
/// generation would measure both.
@MainActor
final class ModelStore: ObservableObject {
    /// What is using the shared models.
    enum Activity: String {
        case generating = "Generating"
        case benchmarking = "Benchmarking"
    }

    /// The folder in use, if any.
    @Published private(set) var folder: URL?
    /// Its pipeline.json.
    @Published private(set) var description: PipelineDescription?
    /// The folder in use, opened once (pipeline.json read and checked).
    private var opened: ConvertedFolder?
    /// Why no folder could be used, or what went wrong importing one.
    @Published var message: String?
    /// nil: the compute units the folder was converted for (`attention`: original -> CPU and
    /// GPU, split einsum -> CPU and Neural Engine).
    @Published var computeUnits: ComputeUnits?
    @Published var reduceMemory = false
    /// Fraction of the bytes copied while a picked folder is imported; nil when not importing.
    @Published private(set) var importProgress: Double?
    /// The folders imported into the app, newest first (each can be deleted).
    @Published private(set) var imported: [URL] = []
    /// Generate or Benchmark, while one of them runs.
    @Published private(set) var activity: Activity?

    private static let importedKey = "SnapFusionImportedModelFolder"
    private var shared: (key: String, pipeline: Pipeline, backend: any PreparableBackend)?

    init() {
        refreshImported()
        // An imported folder is the user's choice: it wins over the bundled default.
        if let name = UserDefaults.standard.string(forKey: Self.importedKey),
           let imported = try? Self.modelsDirectory().appendingPathComponent(name, isDirectory: true),
           FileManager.default.fileExists(atPath: imported.path), (try? use(imported)) != nil { return }
        if let bundled = Self.bundledFolder() {
            do {
                try use(bundled)
                return
            } catch {
                message = error.localizedDescription
                return
            }
        }
        message = "No model yet: choose a folder written by `snapfusion-coreml convert`."
    }

    /// The compute units the pipeline uses: the user's choice, else the folder's.
    var effectiveComputeUnits: ComputeUnits? {
        computeUnits ?? description.map(ModelCompatibility.recommendedComputeUnits(for:))
    }

    /// Marks the shared models as used by `activity`; false while the other one runs.
    func begin(_ activity: Activity) -> Bool {
        guard self.activity == nil else { return false }
        self.activity = activity
        return true
    }

    /// Why `begin(_:)` refused.
    var busyMessage: String {
        "\(activity?.rawValue ?? "Another run") is still using the models: wait for it to end, or cancel it."
    }

    /// Ends `activity` (ignored when another one holds the models).
    func end(_ activity: Activity) {
        if self.activity == activity { self.activity = nil }
    }

    /// The pipeline for the current folder and settings, shared by every screen; rebuilt (and
    /// the previous models released) only when the folder or a setting changes. The backend and
    /// the tokenizer (vocab.json and merges.txt, tens of thousands of entries) are built off the
    /// main actor.
    func pipeline() async throws -> (pipeline: Pipeline, backend: any PreparableBackend) {
        guard let folder, let opened else { throw AppError.noModel }
        let (units, reduceMemory) = (computeUnits, self.reduceMemory)
        let key = "\(folder.path)|\(units?.rawValue ?? "auto")|\(reduceMemory)"
        if let shared, shared.key == key { return (shared.pipeline, shared.backend) }
        releaseShared()
        let built = try await Task.detached(priority: .userInitiated) { () throws -> (Pipeline, any PreparableBackend) in
            // Core ML for .mlpackage folders, Core AI for .aimodel folders (iOS 27)
            let backend = try opened.makeBackend(coreML: .init(computeUnits: units, reduceMemory: reduceMemory))
            return (try Pipeline(folder: opened, backend: backend, nonFiniteRecovery: .retryOnCPUAndGPU), backend)
        }.value
        // Settings may have changed while building: the newest request wins, older ones are discarded.
        if let shared, shared.key == key { return (shared.pipeline, shared.backend) }
        shared = (key, built.0, built.1)
        return built
    }

    /// The open folder's format: Core ML packages or Core AI assets.
    func folderFormat() throws -> FolderFormat {
        guard let opened else { throw AppError.noModel }
        return try opened.format()
    }

    /// Releases the models (memory warning, app in the background) without blocking the main
    /// thread: the release runs on a background thread inside a background task, and never waits
    /// for a load in progress (SnapFusionKit abandons it). The next generation loads them again.
    func unloadModels() {
        guard let backend = shared?.backend else { return }
        Self.release(backend)
    }

    /// Imports a folder picked in the Files app into Application Support (so it stays readable
    /// without security-scoped access and survives the source being moved), with progress, then
    /// uses the copy. A folder that is not a complete converted folder, that needs a newer iOS,
    /// or whose files are still iCloud placeholders, is refused before copying.
    func importFolder(_ source: URL) async {
        guard importProgress == nil else { return }
        message = nil
        importProgress = 0
        defer { importProgress = nil }
        let scoped = source.startAccessingSecurityScopedResource()
        defer { if scoped { source.stopAccessingSecurityScopedResource() } }
        do {
            try FolderCopy.requireDownloaded(source)
            try ModelCompatibility.check(try ConvertedFolder(url: source).description)
            let destination = try Self.modelsDirectory().appendingPathComponent(source.lastPathComponent, isDirectory: true)
            try await FolderCopy.copy(source, to: destination) { fraction in
                Task { @MainActor [weak self] in self?.importProgress = fraction }
            }
            releaseShared()
            try use(destination)
            UserDefaults.standard.set(destination.lastPathComponent, forKey: Self.importedKey)
            refreshImported()
        } catch {
            message = error.localizedDescription
        }
    }

    /// Deletes an imported folder; when it is the one in use, the app goes back to the bundled
    /// model (or to none). Refused while Generate or Benchmark runs.
    func deleteImported(_ url: URL) {
        guard activity == nil else {
            message = "Wait for \(activity?.rawValue.lowercased() ?? "the current run") to finish before deleting a model."
            return
        }
        if isInUse(url) {
            releaseShared()
            opened = nil
            description = nil
            folder = nil
            UserDefaults.standard.removeObject(forKey: Self.importedKey)
        }
        do {
            try FileManager.default.removeItem(at: url)
        } catch {
            message = "could not delete \(url.lastPathComponent): \(error.localizedDescription)"
        }
        refreshImported()
        if folder == nil {
            if let bundled = Self.bundledFolder(), (try? use(bundled)) != nil { return }
            message = "No model yet: choose a folder written by `snapfusion-coreml convert`."
        }
    }

    /// Whether `url` is the folder in use (compared as paths: directory URLs may or may not end in "/").
    func isInUse(_ url: URL) -> Bool {
        folder.map { $0.standardizedFileURL.path == url.standardizedFileURL.path } ?? false
    }

    /// Uses one of the imported folders.
    func select(_ url: URL) {
        guard activity == nil, !isInUse(url) else { return }
        do {
            releaseShared()
            try use(url)
            UserDefaults.standard.set(url.lastPathComponent, forKey: Self.importedKey)
        } catch {
            message = error.localizedDescription
        }
    }

    /// Opens `url`, refusing a folder that needs a newer OS than this one (one clear message)
    /// before anything is compiled; the compute units go back to the folder's own.
    private func use(_ url: URL) throws {
        let opened = try ConvertedFolder(url: url)
        try ModelCompatibility.check(opened.description)
        self.opened = opened
        description = opened.description
        folder = url
        computeUnits = nil
        message = nil
    }

    private func releaseShared() {
        if let backend = shared?.backend { Self.release(backend) }
        shared = nil
    }

    private static func release(_ backend: any PreparableBackend) {
        let task = UIApplication.shared.beginBackgroundTask(withName: "Release models", expirationHandler: nil)
        Task.detached(priority: .userInitiated) {
            backend.unload()
            await MainActor.run {
                if task != .invalid { UIApplication.shared.endBackgroundTask(task) }
            }
        }
    }

    private func refreshImported() {
        guard let directory = try? Self.modelsDirectory(),
              let names = try? FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil)
        else { return }
        imported = names.filter { !$0.lastPathComponent.hasPrefix(".") }
            .sorted { $0.lastPathComponent < $1.lastPathComponent }
    }

    /// Application Support/Models, excluded from iCloud and computer backups: the folders are
    /// large and can be imported again from their source.
    private static func modelsDirectory() throws -> URL {
        var url = try FileManager.default.url(for: .applicationSupportDirectory, in: .userDomainMask, appropriateFor: nil, create: true)
            .appendingPathComponent("Models", isDirectory: true)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        var values = URLResourceValues()
        values.isExcludedFromBackup = true
        try url.setResourceValues(values)
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
