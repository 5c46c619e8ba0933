import Foundation

/// Errors reading a converted folder's pipeline.json.
public enum PipelineDescriptionError: LocalizedError, Equatable {
    /// The folder has no pipeline.json (it is written last, so the conversion did not finish).
    case missingPipelineFile(String)
    case unsupportedFormatVersion(Int, String)
    case malformed(String, String)
    /// `sampler.name` is not one SnapFusionKit implements.
    case unsupportedSampler(String, String)
    case missingComponent(String, String)
    case missingFile(String, component: String, folder: String)

    public var errorDescription: String? {
        switch self {
        case let .missingPipelineFile(folder):
            return "no pipeline.json in \(folder): expected a folder written by `snapfusion-coreml convert` (pipeline.json is written last, so the conversion may not have finished)"
        case let .unsupportedFormatVersion(version, source):
            return "expected pipeline.json format_version "
                + PipelineDescription.supportedFormatVersions.map(String.init).joined(separator: " or ")
                + ", got \(version) (in \(source)); use a SnapFusionKit that matches the converter"
        case let .unsupportedSampler(name, source):
            return "malformed pipeline.json: expected sampler.name as one of \(SamplerName.supportedList), got \"\(name)\" (in \(source))"
        case let .malformed(source, reason):
            return "malformed pipeline.json: \(reason) (in \(source))"
        case let .missingComponent(name, source):
            return "pipeline.json has no \"\(name)\" component; convert it too (in \(source))"
        case let .missingFile(file, component, folder):
            return "missing \(component) file \(file) in \(folder)" + (file.hasSuffix(".mlpackage") ? " (or \(ModelFiles.compiledName(of: file)))" : "")
        }
    }
}
