import Foundation

/// Which runtime a converted folder's files are for (pipeline.json's component `format`,
/// docs/contracts.md sections 1-2).
///
/// - `coreML`: `.mlpackage` files, run by `CoreMLBackend` (iOS 16+, macOS 13+).
/// - `coreAI`: `.aimodel` files written by `convert --format coreai`, for Apple's Core AI
///   framework (iOS / iPadOS / macOS 27). SnapFusionKit has no Core AI backend yet: such a folder
///   is refused with `FolderFormatError.needsCoreAI` instead of failing inside Core ML.
public enum FolderFormat: String, Sendable, Equatable {
    case coreML = "coreml"
    case coreAI = "coreai"
}

/// A folder whose format this backend cannot run.
public enum FolderFormatError: LocalizedError, Equatable {
    /// A Core AI folder handed to a Core ML backend (or an OS without Core AI).
    case needsCoreAI(folder: String)
    /// A Core ML folder handed to a Core AI backend.
    case needsCoreML(folder: String)
    /// Components of more than one format, or an unknown one.
    case unsupported(String, folder: String)

    public var errorDescription: String? {
        switch self {
        case let .needsCoreAI(folder):
            return "\(folder) holds Core AI assets (.aimodel): Core AI folders need iOS/macOS 27 and the Core AI backend; "
                + "convert with --format coreml for iOS 16-26"
        case let .needsCoreML(folder):
            return "\(folder) holds Core ML packages (.mlpackage): run it with CoreMLBackend"
        case let .unsupported(format, folder):
            return "expected component formats coreml or coreai, all the same, got \(format) (in \(folder)/pipeline.json)"
        }
    }
}

extension ConvertedFolder {
    /// The folder's format: that of its components (a component without `format` is Core ML).
    public func format() throws -> FolderFormat {
        let components = [description.components.textEncoder, description.components.unet, description.components.decoder]
        let names = Set(components.compactMap { $0 }.map { $0.format ?? FolderFormat.coreML.rawValue })
        guard names.count <= 1 else {
            throw FolderFormatError.unsupported(names.sorted().joined(separator: ", "), folder: url.path)
        }
        let name = names.first ?? FolderFormat.coreML.rawValue
        guard let format = FolderFormat(rawValue: name) else { throw FolderFormatError.unsupported(name, folder: url.path) }
        return format
    }

    /// Throws unless the folder is of `format` (the backend's own).
    public func requireFormat(_ format: FolderFormat) throws {
        let found = try self.format()
        guard found == format else {
            throw found == .coreAI ? FolderFormatError.needsCoreAI(folder: url.path) : FolderFormatError.needsCoreML(folder: url.path)
        }
    }
}
