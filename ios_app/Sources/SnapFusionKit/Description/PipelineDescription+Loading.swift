import Foundation

extension PipelineDescription {
    /// Names of the three components in pipeline.json's `components`.
    public enum ComponentName: String, CaseIterable, Sendable {
        case textEncoder = "text_encoder"
        case unet
        case decoder
    }

    /// Decodes pipeline.json bytes; `source` names the file in errors.
    public static func decode(_ data: Data, source: String = fileName) throws -> PipelineDescription {
        struct VersionProbe: Decodable { var formatVersion: Int? }
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let probe: VersionProbe
        do { probe = try decoder.decode(VersionProbe.self, from: data) } catch {
            throw PipelineDescriptionError.malformed(source, "invalid JSON: \(error.localizedDescription)")
        }
        guard let version = probe.formatVersion else {
            throw PipelineDescriptionError.malformed(source, "missing key \"format_version\"")
        }
        guard version == supportedFormatVersion else {
            throw PipelineDescriptionError.unsupportedFormatVersion(version, source)
        }
        do {
            return try decoder.decode(PipelineDescription.self, from: data)
        } catch let error as DecodingError {
            throw PipelineDescriptionError.malformed(source, Self.describe(error))
        }
    }

    /// Reads `folder/pipeline.json` and checks that every component and tokenizer file exists
    /// (a component's `.mlpackage` or a compiled `.mlmodelc` of the same name).
    ///
    /// - Parameter required: components that must be present (all three to generate images).
    public static func load(from folder: URL, requiring required: [ComponentName] = ComponentName.allCases) throws -> PipelineDescription {
        let url = folder.appendingPathComponent(fileName)
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw PipelineDescriptionError.missingPipelineFile(folder.path)
        }
        let description = try decode(Data(contentsOf: url), source: url.path)
        try description.validateFiles(in: folder, requiring: required)
        return description
    }

    /// Throws for the first missing component entry or file (components, then tokenizer files).
    public func validateFiles(in folder: URL, requiring required: [ComponentName] = ComponentName.allCases) throws {
        let source = folder.appendingPathComponent(Self.fileName).path
        for name in required {
            guard let component = component(name) else {
                throw PipelineDescriptionError.missingComponent(name.rawValue, source)
            }
            guard !component.files.isEmpty else {
                throw PipelineDescriptionError.malformed(source, "component \"\(name.rawValue)\" names neither \"file\" nor \"chunks\"")
            }
            for file in component.files where ModelFiles.resolve(file, in: folder) == nil {
                throw PipelineDescriptionError.missingFile(file, component: name.rawValue, folder: folder.path)
            }
        }
        for file in [tokenizer.vocab, tokenizer.merges] where !FileManager.default.fileExists(atPath: folder.appendingPathComponent(file).path) {
            throw PipelineDescriptionError.missingFile(file, component: "tokenizer", folder: folder.path)
        }
    }

    /// The component called `name`, if the folder has it.
    public func component(_ name: ComponentName) -> Component? {
        switch name {
        case .textEncoder: return components.textEncoder
        case .unet: return components.unet
        case .decoder: return components.decoder
        }
    }

    private static func describe(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context) -> String {
            context.codingPath.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")
        }
        switch error {
        case let .keyNotFound(key, context):
            let prefix = path(context)
            return "missing key \"\(prefix.isEmpty ? "" : prefix + ".")\(key.stringValue)\""
        case let .typeMismatch(type, context):
            return "expected \(type) at \"\(path(context))\""
        case let .valueNotFound(type, context):
            return "expected \(type) at \"\(path(context))\", got null"
        case let .dataCorrupted(context):
            return "invalid value at \"\(path(context))\": \(context.debugDescription)"
        @unknown default:
            return String(describing: error)
        }
    }
}

/// Errors reading a converted folder's pipeline.json.
public enum PipelineDescriptionError: LocalizedError, Equatable {
    /// The folder has no pipeline.json (it is written last, so the conversion did not finish).
    case missingPipelineFile(String)
    case unsupportedFormatVersion(Int, String)
    case malformed(String, String)
    case missingComponent(String, String)
    case missingFile(String, component: String, folder: String)

    public var errorDescription: String? {
        switch self {
        case let .missingPipelineFile(folder):
            return "no pipeline.json in \(folder): expected a folder written by `snapfusion-coreml convert` (pipeline.json is written last, so the conversion may not have finished)"
        case let .unsupportedFormatVersion(version, source):
            return "expected pipeline.json format_version \(PipelineDescription.supportedFormatVersion), got \(version) (in \(source)); use a SnapFusionKit that matches the converter"
        case let .malformed(source, reason):
            return "malformed pipeline.json: \(reason) (in \(source))"
        case let .missingComponent(name, source):
            return "pipeline.json has no \"\(name)\" component; convert it too (in \(source))"
        case let .missingFile(file, component, folder):
            return "missing \(component) file \(file) in \(folder)" + (file.hasSuffix(".mlpackage") ? " (or \(ModelFiles.compiledName(of: file)))" : "")
        }
    }
}
