import Foundation
import SnapFusionKit

/// Writes generated images as PNG with the portable encoder (the same bytes on every platform).
enum PNGWriter {
    /// Writes atomically: an existing file is replaced only by a complete PNG.
    static func write(_ image: RGBAImage, to url: URL) throws {
        do {
            try Data(PNGEncoder.encode(image)).write(to: url, options: .atomic)
        } catch {
            throw CLIError.unavailable("could not write \(url.path): \(error.localizedDescription)")
        }
    }
}
