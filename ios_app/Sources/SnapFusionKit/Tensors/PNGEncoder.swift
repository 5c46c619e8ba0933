/// A dependency-free PNG writer (8-bit RGB, no interlace), so images are written the same way on
/// every platform, Linux included. The zlib stream uses stored (uncompressed) deflate blocks:
/// the file is larger than a compressed one (about 3 bytes per pixel) but byte-exact and simple.
///
/// Format: PNG specification (ISO/IEC 15948) sections 5 (signature, chunks, CRC-32), 11.2.2
/// (IHDR), 11.2.4 (IDAT), 11.2.5 (IEND); zlib RFC 1950 (header, Adler-32); deflate RFC 1951
/// section 3.2.4 (stored blocks).
public enum PNGEncoder {
    /// The PNG bytes of `image` (alpha dropped: decoded images are opaque).
    public static func encode(_ image: RGBAImage) -> [UInt8] {
        // 1. raw scanlines: filter type 0 (None) + RGB bytes
        var raw = [UInt8]()
        raw.reserveCapacity(image.height * (1 + image.width * 3))
        for y in 0..<image.height {
            raw.append(0)
            for x in 0..<image.width {
                let i = (y * image.width + x) * 4
                raw.append(contentsOf: image.bytes[i..<(i + 3)])
            }
        }
        // 2. zlib stream of stored blocks (at most 65535 bytes each)
        var zlib: [UInt8] = [0x78, 0x01]
        var offset = 0
        repeat {
            let length = min(65_535, raw.count - offset)
            let final: UInt8 = offset + length == raw.count ? 1 : 0
            zlib.append(final)
            zlib.append(contentsOf: [UInt8(length & 0xFF), UInt8(length >> 8), UInt8(~length & 0xFF), UInt8((~length >> 8) & 0xFF)])
            zlib.append(contentsOf: raw[offset..<(offset + length)])
            offset += length
        } while offset < raw.count
        zlib.append(contentsOf: bigEndian(adler32(raw)))
        // 3. chunks
        var png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        let header = bigEndian(UInt32(image.width)) + bigEndian(UInt32(image.height)) + [8, 2, 0, 0, 0]
        chunk("IHDR", header, into: &png)
        chunk("IDAT", zlib, into: &png)
        chunk("IEND", [], into: &png)
        return png
    }

    /// CRC-32 (ISO 3309, polynomial 0xEDB88320 reflected) as PNG chunks use it.
    public static func crc32<C: Collection>(_ bytes: C) -> UInt32 where C.Element == UInt8 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc = crcTable[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8)
        }
        return crc ^ 0xFFFF_FFFF
    }

    /// Adler-32 (RFC 1950 section 8).
    public static func adler32(_ bytes: [UInt8]) -> UInt32 {
        var a: UInt32 = 1
        var b: UInt32 = 0
        for byte in bytes {
            a = (a + UInt32(byte)) % 65_521
            b = (b + a) % 65_521
        }
        return (b << 16) | a
    }

    private static let crcTable: [UInt32] = (0..<256).map { n in
        var c = UInt32(n)
        for _ in 0..<8 { c = (c & 1) != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    private static func chunk(_ type: String, _ data: [UInt8], into png: inout [UInt8]) {
        let typed = Array(type.utf8) + data
        png.append(contentsOf: bigEndian(UInt32(data.count)))
        png.append(contentsOf: typed)
        png.append(contentsOf: bigEndian(crc32(typed)))
    }

    private static func bigEndian(_ value: UInt32) -> [UInt8] {
        [UInt8(value >> 24), UInt8((value >> 16) & 0xFF), UInt8((value >> 8) & 0xFF), UInt8(value & 0xFF)]
    }
}
