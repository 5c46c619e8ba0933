/// 8-bit RGBA pixels of a decoded image, independent of any image framework.
public struct RGBAImage: Equatable, Sendable {
    public let width: Int
    public let height: Int
    /// `width * height * 4` bytes, row-major, alpha 255.
    public let bytes: [UInt8]

    /// Pixels from `width * height * 4` RGBA bytes.
    init(width: Int, height: Int, bytes: [UInt8]) {
        precondition(bytes.count == width * height * 4, "expected width * height * 4 bytes")
        self.width = width
        self.height = height
        self.bytes = bytes
    }

    /// Converts a decoder output `(1, 3, H, W)` in [-1, 1] (values outside are clipped):
    /// `round((x + 1) / 2 * 255)`. NaN becomes 0 (the pipeline already
    /// refuses non-finite decoder outputs with `PipelineError.nonFiniteOutput`).
    public init(image: Tensor) throws {
        guard image.shape.count == 4, image.shape[0] == 1, image.shape[1] == 3 else {
            throw PipelineError.unexpectedShape(what: "image", expected: [1, 3, image.shape.count > 2 ? image.shape[2] : 0,
                                                                          image.shape.count > 3 ? image.shape[3] : 0], got: image.shape)
        }
        let (h, w) = (image.shape[2], image.shape[3])
        var bytes = [UInt8](repeating: 255, count: w * h * 4)
        for channel in 0..<3 {
            for pixel in 0..<(w * h) {
                let value = (image.scalars[channel * w * h + pixel] + 1) / 2 * 255
                bytes[pixel * 4 + channel] = value.isNaN ? 0 : UInt8(min(max(value, 0), 255).rounded())
            }
        }
        self.width = w
        self.height = h
        self.bytes = bytes
    }
}
