import Foundation
import SnapFusionKit
#if canImport(ImageIO)
import ImageIO
#endif

/// Writes generated images as PNG (ImageIO on Apple platforms).
enum PNGWriter {
    static func write(_ image: RGBAImage, to url: URL) throws {
        #if canImport(ImageIO) && canImport(CoreGraphics)
        guard let cgImage = image.cgImage,
              let destination = CGImageDestinationCreateWithURL(url as CFURL, "public.png" as CFString, 1, nil) else {
            throw CLIError.unavailable("could not create \(url.path)")
        }
        CGImageDestinationAddImage(destination, cgImage, nil)
        guard CGImageDestinationFinalize(destination) else { throw CLIError.unavailable("could not write \(url.path)") }
        #else
        throw CLIError.unavailable("writing PNG needs ImageIO (macOS or iOS)")
        #endif
    }
}
