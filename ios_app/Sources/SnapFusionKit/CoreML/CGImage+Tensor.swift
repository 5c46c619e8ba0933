#if canImport(CoreGraphics)
import CoreGraphics
import Foundation

extension RGBAImage {
    /// An sRGB `CGImage` (8 bits per channel, alpha ignored).
    public var cgImage: CGImage? {
        guard let provider = CGDataProvider(data: Data(bytes) as CFData),
              let space = CGColorSpace(name: CGColorSpace.sRGB) else { return nil }
        return CGImage(width: width, height: height, bitsPerComponent: 8, bitsPerPixel: 32, bytesPerRow: width * 4,
                       space: space, bitmapInfo: CGBitmapInfo(rawValue: CGImageAlphaInfo.noneSkipLast.rawValue),
                       provider: provider, decode: nil, shouldInterpolate: false, intent: .defaultIntent)
    }
}

extension GenerationResult {
    /// The decoded image as a `CGImage` (the decoder's [-1, 1] output mapped to RGBA8).
    public func cgImage() throws -> CGImage {
        guard let image = try RGBAImage(image: image).cgImage else { throw CoreMLBackendError.imageConversionFailed }
        return image
    }
}
#endif
