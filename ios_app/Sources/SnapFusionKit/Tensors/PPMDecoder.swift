import Foundation

/// A dependency-free reader of binary PPM images (Netpbm "P6", maxval 1...255), the starting-image
/// format of `snapfusion-cli generate --init-image` on every platform: the Linux toolchain has
/// neither zlib nor an image decoder, so PNG cannot be read there without a dependency, while PPM
/// is raw RGB after a short text header. PIL reads and writes it (`Image.open("in.png").convert("RGB").save("in.ppm")`).
///
/// Format (Netpbm's ppm(5)): "P6", whitespace, width, whitespace, height, whitespace, maxval,
/// one whitespace byte, then width * height RGB triplets of one byte each (maxval < 256);
/// `#` starts a comment up to the end of the line anywhere in the header. Values are scaled to
/// 0...255 when maxval is below 255 (`round(v * 255 / maxval)`).
public enum PPMDecoder {
    /// The pixels of a P6 file's bytes.
    /// - Throws: `PPMError` naming what is wrong (not P6, a bad header, maxval above 255, truncated pixels).
    public static func decode(_ data: [UInt8]) throws -> RGBImage {
        var index = 0
        func skipWhitespaceAndComments() {
            while index < data.count {
                if data[index] == UInt8(ascii: "#") {
                    while index < data.count, data[index] != 0x0A, data[index] != 0x0D { index += 1 }
                } else if [0x20, 0x09, 0x0A, 0x0D, 0x0B, 0x0C].contains(data[index]) {
                    index += 1
                } else {
                    return
                }
            }
        }
        func number(_ what: String) throws -> Int {
            skipWhitespaceAndComments()
            var value = 0
            let start = index
            while index < data.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(data[index]) {
                value = value * 10 + Int(data[index] - UInt8(ascii: "0"))
                guard value <= 1 << 20 else { throw PPMError.badHeader("\(what) above \(1 << 20)") }
                index += 1
            }
            guard index > start else { throw PPMError.badHeader("expected the \(what) as a decimal number") }
            return value
        }
        guard data.count >= 2, data[0] == UInt8(ascii: "P"), data[1] == UInt8(ascii: "6") else {
            throw PPMError.notBinaryPPM
        }
        index = 2
        let width = try number("width")
        let height = try number("height")
        let maxval = try number("maxval")
        guard width >= 1, height >= 1 else { throw PPMError.badHeader("expected width and height >= 1, got \(width)x\(height)") }
        guard (1...255).contains(maxval) else { throw PPMError.badHeader("expected maxval 1...255 (8-bit), got \(maxval)") }
        guard index < data.count, [0x20, 0x09, 0x0A, 0x0D, 0x0B, 0x0C].contains(data[index]) else {
            throw PPMError.badHeader("expected one whitespace byte after maxval")
        }
        index += 1
        let count = width * height * 3
        guard data.count - index >= count else { throw PPMError.truncated(expected: count, got: data.count - index) }
        var bytes = Array(data[index..<(index + count)])
        if maxval < 255 {
            bytes = bytes.map { UInt8((Double(min(Int($0), maxval)) * 255 / Double(maxval)).rounded()) }
        }
        return try RGBImage(width: width, height: height, bytes: bytes)
    }

    /// The P6 bytes of `image` (maxval 255), for tests and tools.
    public static func encode(_ image: RGBImage) -> [UInt8] {
        Array("P6\n\(image.width) \(image.height)\n255\n".utf8) + image.bytes
    }
}

/// Errors reading a PPM file.
public enum PPMError: LocalizedError, Equatable {
    case notBinaryPPM
    case badHeader(String)
    case truncated(expected: Int, got: Int)

    public var errorDescription: String? {
        switch self {
        case .notBinaryPPM:
            return "expected a binary PPM image (starting with P6), got another format; convert it, e.g. "
                + "python -c \"from PIL import Image; Image.open('in.png').convert('RGB').save('in.ppm')\""
        case let .badHeader(reason):
            return "malformed PPM header: \(reason)"
        case let .truncated(expected, got):
            return "truncated PPM image: expected \(expected) pixel bytes, got \(got)"
        }
    }
}
