#if canImport(CoreGraphics)
import CoreGraphics
import Foundation

extension RGBImage {
    /// The pixels of `cgImage` in sRGB, 8 bits per channel (alpha dropped: transparent pixels are
    /// drawn over black). For the starting image of image-to-image (`GenerationRequest.initImage`).
    public init(cgImage: CGImage) throws {
        let (width, height) = (cgImage.width, cgImage.height)
        let rgba = try Self.draw(cgImage, width: width, height: height,
                                 in: CGRect(x: 0, y: 0, width: width, height: height), quality: .none)
        self.init(RGBAImage(width: width, height: height, bytes: rgba))
    }

    /// Center-cropped to the aspect ratio of `size` and resized to it with Core Graphics'
    /// high-quality interpolation (the Python pipeline crops the same way and resizes with
    /// Lanczos, so the pixels differ slightly).
    func resizedWithCoreGraphics(to size: PipelineDescription.ImageSize) throws -> RGBImage {
        var rgba = [UInt8](repeating: 255, count: width * height * 4)
        for pixel in 0..<(width * height) {
            rgba.replaceSubrange((pixel * 4)..<(pixel * 4 + 3), with: bytes[(pixel * 3)..<(pixel * 3 + 3)])
        }
        guard let source = RGBAImage(width: width, height: height, bytes: rgba).cgImage else {
            throw RGBImageError.drawingFailed(width: width, height: height)
        }
        // The largest centered crop of the target's aspect ratio, scaled to fill the target; the
        // context clips what lies outside.
        let (w, h, targetW, targetH) = (Double(width), Double(height), Double(size.width), Double(size.height))
        let scale = w * targetH > targetW * h ? targetH / h : targetW / w
        let rect = CGRect(x: (targetW - w * scale) / 2, y: (targetH - h * scale) / 2, width: w * scale, height: h * scale)
        let resized = try Self.draw(source, width: size.width, height: size.height, in: rect, quality: .high)
        return RGBImage(RGBAImage(width: size.width, height: size.height, bytes: resized))
    }

    /// `image` drawn into `rect` of an sRGB RGBX8 bitmap of `width` x `height`.
    private static func draw(_ image: CGImage, width: Int, height: Int, in rect: CGRect,
                             quality: CGInterpolationQuality) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: width * height * 4)
        let drawn = bytes.withUnsafeMutableBytes { buffer -> Bool in
            guard let space = CGColorSpace(name: CGColorSpace.sRGB),
                  let context = CGContext(data: buffer.baseAddress, width: width, height: height, bitsPerComponent: 8,
                                          bytesPerRow: width * 4, space: space,
                                          bitmapInfo: CGImageAlphaInfo.noneSkipLast.rawValue) else { return false }
            context.interpolationQuality = quality
            context.draw(image, in: rect)
            return true
        }
        guard drawn else { throw RGBImageError.drawingFailed(width: width, height: height) }
        return bytes
    }
}

/// Errors converting a starting image with Core Graphics.
public enum RGBImageError: LocalizedError, Equatable {
    case drawingFailed(width: Int, height: Int)

    public var errorDescription: String? {
        switch self {
        case let .drawingFailed(width, height):
            return "could not draw the starting image into an 8-bit sRGB bitmap of \(width)x\(height)"
        }
    }
}
#endif
