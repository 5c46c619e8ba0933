#if canImport(CoreML)
import Foundation

/// A backend that does its slow first-use work (compiling packages, specializing assets for this
/// device) ahead of the first generation, off the caller's thread.
public protocol PreparableBackend: DiffusionBackend {
    /// Compiles or specializes every model without keeping it loaded where the runtime allows.
    func prepare() async throws
}

extension CoreMLBackend: PreparableBackend {
    /// Core ML: compiles every package not compiled yet (`compile()`).
    public func prepare() async throws { try await compile() }
}

#if canImport(CoreAI)
@available(iOS 27.0, macOS 27.0, *)
extension CoreAIBackend: PreparableBackend {}
#endif

extension ConvertedFolder {
    /// The backend the folder's format needs on this system (`format()`): `CoreMLBackend` with
    /// `configuration` for Core ML folders (iOS 16+, macOS 13+), `CoreAIBackend` for Core AI
    /// folders where Core AI exists (iOS / iPadOS / macOS 27). A Core AI folder on an older
    /// system throws `FolderFormatError.needsCoreAI`.
    ///
    /// ```swift
    /// let folder = try ConvertedFolder(url: url)
    /// let backend = try folder.makeBackend(coreML: .init(computeUnits: .cpuAndNeuralEngine))
    /// try await backend.prepare()
    /// let pipeline = try Pipeline(folder: folder, backend: backend)
    /// ```
    public func makeBackend(coreML configuration: CoreMLBackend.Configuration = .init()) throws -> any PreparableBackend {
        switch try format() {
        case .coreML:
            return try CoreMLBackend(folder: self, configuration: configuration)
        case .coreAI:
            #if canImport(CoreAI)
            if #available(iOS 27.0, macOS 27.0, *) { return try CoreAIBackend(folder: self) }
            #endif
            throw FolderFormatError.needsCoreAI(folder: url.path)
        }
    }
}
#endif
