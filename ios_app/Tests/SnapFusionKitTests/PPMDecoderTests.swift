import Foundation
import Testing
@testable import SnapFusionKit

/// The starting-image reader of `snapfusion-cli generate --init-image`.
@Suite struct PPMDecoderTests {
    @Test func roundTripsAndReadsCommentsAndSmallMaxval() throws {
        let image = try RGBImage(width: 3, height: 2, bytes: (0..<18).map { UInt8($0 * 14) })
        #expect(try PPMDecoder.decode(PPMDecoder.encode(image)) == image)
        let commented = Array("P6 # made by hand\n3\t2 # size\n255\n".utf8) + image.bytes
        #expect(try PPMDecoder.decode(commented) == image)
        let fifteen = try PPMDecoder.decode(Array("P6\n1 1\n15\n".utf8) + [0, 15, 8])
        #expect(fifteen.bytes == [0, 255, 136])
    }

    @Test func malformedFilesAreNamed() {
        #expect(throws: PPMError.notBinaryPPM) { try PPMDecoder.decode(Array("P3\n1 1\n255\n0 0 0".utf8)) }
        #expect(throws: PPMError.truncated(expected: 12, got: 3)) { try PPMDecoder.decode(Array("P6\n2 2\n255\n".utf8) + [1, 2, 3]) }
        #expect(throws: PPMError.badHeader("expected maxval 1...255 (8-bit), got 65535")) {
            try PPMDecoder.decode(Array("P6\n1 1\n65535\n".utf8) + [0, 0, 0, 0, 0, 0])
        }
        #expect(throws: PPMError.badHeader("expected the height as a decimal number")) { try PPMDecoder.decode(Array("P6 4 x".utf8)) }
        #expect(PPMError.notBinaryPPM.localizedDescription.contains("convert('RGB').save('in.ppm')"))
    }
}
