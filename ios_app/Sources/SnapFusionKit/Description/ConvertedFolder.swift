import Foundation

/// A converted folder opened once: its pipeline.json read and checked (version, values, and every
/// required component's files and the tokenizer files present). Whoever opens the folder hands
/// this to `Pipeline` and the backend, so the file is decoded once.
///
/// ```swift
/// let folder = try ConvertedFolder(url: url)
/// let backend = try CoreMLBackend(folder: folder)
/// let pipeline = try Pipeline(folder: folder, backend: backend)
/// ```
public struct ConvertedFolder: Sendable {
    /// The folder on disk.
    public let url: URL
    /// Its pipeline.json.
    public let description: PipelineDescription

    /// Reads `url/pipeline.json` and checks the files it names.
    ///
    /// - Parameter required: components that must be present (text encoder, UNet and decoder to
    ///   generate images). A listed encoder's files must be present too; a folder without one
    ///   opens, and image-to-image on it throws `PipelineError.missingEncoder`.
    public init(url: URL, requiring required: [PipelineDescription.ComponentName] = PipelineDescription.ComponentName.textToImage) throws {
        let file = url.appendingPathComponent(PipelineDescription.fileName)
        guard FileManager.default.fileExists(atPath: file.path) else {
            throw PipelineDescriptionError.missingPipelineFile(url.path)
        }
        let description = try PipelineDescription.decode(Data(contentsOf: file), source: file.path)
        self.init(url: url, description: description)
        for name in required { _ = try modelURLs(name) }
        if description.components.encoder != nil, !required.contains(.encoder) { _ = try modelURLs(.encoder) }
        for name in [description.tokenizer.vocab, description.tokenizer.merges]
        where !FileManager.default.fileExists(atPath: url.appendingPathComponent(name).path) {
            throw PipelineDescriptionError.missingFile(name, component: "tokenizer", folder: url.path)
        }
    }

    /// A folder whose description was already read (checks nothing).
    public init(url: URL, description: PipelineDescription) {
        self.url = url
        self.description = description
    }

    /// The files that run component `name`, in execution order: for each package pipeline.json
    /// names, a compiled `.mlmodelc` of the same name when present, else the package.
    ///
    /// - Throws: `missingComponent` when the folder has no such component, `missingFile` for the
    ///   first file found neither way.
    public func modelURLs(_ name: PipelineDescription.ComponentName) throws -> [URL] {
        guard let component = description.component(name) else {
            throw PipelineDescriptionError.missingComponent(name.rawValue, url.appendingPathComponent(PipelineDescription.fileName).path)
        }
        return try component.files.map { file in
            guard let resolved = ModelFiles.resolve(file, in: url) else {
                throw PipelineDescriptionError.missingFile(file, component: name.rawValue, folder: url.path)
            }
            return resolved
        }
    }

    /// The folder's CLIP tokenizer, configured by pipeline.json's `tokenizer` section.
    public func makeTokenizer() throws -> CLIPTokenizer {
        try CLIPTokenizer(directory: url, vocabFile: description.tokenizer.vocab, mergesFile: description.tokenizer.merges,
                          configuration: description.tokenizerConfiguration)
    }
}
