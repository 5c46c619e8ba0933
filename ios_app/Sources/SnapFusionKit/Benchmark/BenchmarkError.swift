import Foundation

/// Errors of the benchmark harness.
public enum BenchmarkError: LocalizedError, Equatable {
    case invalidRunCount(Int, Int)
    case missingBlocksManifest(String)
    case malformedBlocksManifest(String, String)
    case missingBlockPackage(String, String)

    public var errorDescription: String? {
        switch self {
        case let .invalidRunCount(runs, warmup):
            return "expected runs >= 1 and warmup >= 0, got runs \(runs) and warmup \(warmup)"
        case let .missingBlocksManifest(folder):
            return "no manifest.json in \(folder): expected a folder written by `snapfusion-coreml export-blocks`"
        case let .malformedBlocksManifest(source, reason):
            return "malformed blocks manifest: \(reason) (in \(source))"
        case let .missingBlockPackage(file, folder):
            return "missing block package \(file) in \(folder)"
        }
    }
}
