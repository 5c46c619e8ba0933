/// 8-bit RGB pixels of a starting image for image-to-image, independent of any image framework
/// (the Linux build constructs it from raw bytes, `PPMDecoder` reads one from a file; on Apple
/// platforms `RGBImage(cgImage:)` draws a `CGImage`).
public struct RGBImage: Equatable, Sendable {
    public let width: Int
    public let height: Int
    /// `width * height * 3` bytes, row-major, R G B.
    public let bytes: [UInt8]

    /// Pixels from `width * height * 3` RGB bytes.
    /// - Throws: `TensorError.shapeMismatch` when the count does not match, or a side is < 1.
    public init(width: Int, height: Int, bytes: [UInt8]) throws {
        guard width >= 1, height >= 1, bytes.count == width * height * 3 else {
            throw TensorError.shapeMismatch(expected: [height, width, 3], count: bytes.count)
        }
        self.width = width
        self.height = height
        self.bytes = bytes
    }

    /// The RGB channels of RGBA pixels (alpha dropped).
    public init(_ image: RGBAImage) {
        var bytes = [UInt8]()
        bytes.reserveCapacity(image.width * image.height * 3)
        for pixel in 0..<(image.width * image.height) {
            bytes.append(contentsOf: image.bytes[(pixel * 4)..<(pixel * 4 + 3)])
        }
        self.width = image.width
        self.height = image.height
        self.bytes = bytes
    }

    /// The size as pipeline.json writes it.
    public var size: PipelineDescription.ImageSize { .init(height: height, width: width) }

    /// The VAE encoder's input `(1, 3, H, W)` in [-1, 1]: `x / 127.5 - 1` per byte, in float32
    /// (diffusers' VaeImageProcessor: `x / 255`, then `2 x - 1`, within an ulp).
    public func tensor() -> Tensor {
        let plane = width * height
        var scalars = [Float](repeating: 0, count: 3 * plane)
        for pixel in 0..<plane {
            for channel in 0..<3 {
                scalars[channel * plane + pixel] = Float(bytes[pixel * 3 + channel]) / 127.5 - 1
            }
        }
        return Tensor(validShape: [1, 3, height, width], scalars: scalars)
    }
}
