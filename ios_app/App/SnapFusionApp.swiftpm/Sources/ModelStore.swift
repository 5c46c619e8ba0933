import Foundation
import SnapFusionKit

/// Which converted folder the app uses: the one bundled in Sources/Model, or one the user picked
/// in the Files app (remembered with a security-scoped bookmark).
@MainActor
final class ModelStore: ObservableObject {
    /// The folder in use, if any.
    @Published private(set) var folder: URL?
    /// Its pipeline.json.
    @Published private(set) var description: PipelineDescription?
    /// Why no folder could be used.
    @Published var message: String?
    @Published var computeUnits: ComputeUnits = .cpuAndNeuralEngine
    @Published var reduceMemory = false

    private static let bookmarkKey = "SnapFusionModelFolderBookmark"
    private var scopedFolder: URL?

    init() {
        if let bundled = Self.bundledFolder(), (try? use(bundled)) != nil { return }
        if let data = UserDefaults.standard.data(forKey: Self.bookmarkKey) {
            var stale = false
            if let url = try? URL(resolvingBookmarkData: data, bookmarkDataIsStale: &stale) {
                try? select(url)
            }
        }
        if folder == nil {
            message = "No model yet: choose a folder written by `snapfusion-coreml convert`."
        }
    }

    /// A folder picked with the file importer.
    func select(_ url: URL) throws {
        stopAccess()
        if url.startAccessingSecurityScopedResource() { scopedFolder = url }
        do {
            try use(url)
            let bookmark = try url.bookmarkData(options: .minimalBookmark)
            UserDefaults.standard.set(bookmark, forKey: Self.bookmarkKey)
        } catch {
            stopAccess()
            message = error.localizedDescription
            throw error
        }
    }

    /// A backend for the current folder and settings.
    func makeBackend() throws -> CoreMLBackend {
        guard let folder else { throw AppError.noModel }
        return try CoreMLBackend(folder: folder, configuration: .init(computeUnits: computeUnits, reduceMemory: reduceMemory))
    }

    private func use(_ url: URL) throws {
        description = try PipelineDescription.load(from: url)
        folder = url
        message = nil
    }

    private func stopAccess() {
        scopedFolder?.stopAccessingSecurityScopedResource()
        scopedFolder = nil
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

/// Errors of the sample app.
enum AppError: LocalizedError {
    case noModel

    var errorDescription: String? {
        switch self {
        case .noModel: return "Choose a model folder first."
        }
    }
}
