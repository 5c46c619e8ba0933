import Foundation
import Testing
@testable import SnapFusionKit

/// The float16 output path (read by hand, never through `MLShapedArray(converting:)`), strides,
/// and the token-id input type.
@Suite struct TensorConversionTests {
    @Test func halfBitsDecodeExactly() {
        let cases: [(UInt16, Float)] = [
            (0x0000, 0), (0x3C00, 1), (0xC000, -2), (0x3555, 0.333251953125), (0x7BFF, 65504),
            (0x0400, 0x1p-14), (0x0001, 0x1p-24), (0x03FF, 1023 * 0x1p-24), (0x8001, -0x1p-24),
        ]
        for (bits, value) in cases {
            #expect(HalfPrecision.float(fromBits: bits) == value, "bits \(String(bits, radix: 16))")
        }
        #expect(HalfPrecision.float(fromBits: 0x8000).sign == .minus)
        #expect(HalfPrecision.float(fromBits: 0x7C00) == .infinity)
        #expect(HalfPrecision.float(fromBits: 0xFC00) == -.infinity)
        #expect(HalfPrecision.float(fromBits: 0x7E00).isNaN)
    }

    @Test func everyHalfRoundTripsThroughFloatRounding() {
        // Rounding the decoded value back to binary16 (round to nearest even, as Float16(x) does)
        // must give the same bits for every finite half.
        for bits in UInt16.min...UInt16.max where (bits >> 10) & 0x1F != 0x1F {
            let value = HalfPrecision.float(fromBits: bits)
            #expect(Self.halfBits(value) == bits, "bits \(String(bits, radix: 16))")
        }
    }

    #if !(os(macOS) && arch(x86_64))
    @Test func agreesWithTheStandardLibraryFloat16() {
        for bits in UInt16.min...UInt16.max {
            let mine = HalfPrecision.float(fromBits: bits)
            let library = Float(Float16(bitPattern: bits))
            #expect(mine.bitPattern == library.bitPattern || (mine.isNaN && library.isNaN), "bits \(String(bits, radix: 16))")
        }
    }
    #endif

    /// A reference float32 -> binary16 rounding for finite values in range (tests only).
    static func halfBits(_ value: Float) -> UInt16 {
        let sign: UInt16 = value.sign == .minus ? 0x8000 : 0
        let magnitude = Double(abs(value))
        if magnitude == 0 { return sign }
        if magnitude < 0x1p-14 { return sign | UInt16((magnitude / 0x1p-24).rounded(.toNearestOrEven)) }
        let exponent = Int(floor(log2(magnitude)))
        let mantissa = (magnitude / pow(2, Double(exponent)) - 1) * 1024
        return sign | UInt16(exponent + 15) << 10 | UInt16(mantissa.rounded(.toNearestOrEven))
    }

    @Test func float16BufferWithPaddedStridesBecomesPackedFloat32() throws {
        // (1, 2, 3) stored with row stride 4 (one padding element per row), as Core ML pads outputs.
        let words: [UInt16] = [0x3C00, 0x4000, 0x4200, 0x7E00, 0xBC00, 0x0000, 0x3800, 0xFFFF]
        let tensor = try words.withUnsafeBytes { bytes in
            try Tensor(shape: [1, 2, 3], strides: [8, 4, 1], scalarType: .float16, bytes: bytes)
        }
        #expect(tensor.shape == [1, 2, 3])
        #expect(tensor.scalars == [1, 2, 3, -1, 0, 0.5])
    }

    @Test func everyScalarTypeReads() throws {
        let floats: [Float] = [1.5, -2, 3.25, 0]
        let f32 = try floats.withUnsafeBytes { try Tensor(shape: [2, 2], scalarType: .float32, bytes: $0) }
        #expect(f32.scalars == floats)
        let doubles: [Double] = [1.5, -2, 3.25, 0]
        let f64 = try doubles.withUnsafeBytes { try Tensor(shape: [4], scalarType: .float64, bytes: $0) }
        #expect(f64.scalars == floats)
        let ints: [Int32] = [49406, 320, -1, 0]
        let i32 = try ints.withUnsafeBytes { try Tensor(shape: [1, 4], scalarType: .int32, bytes: $0) }
        #expect(i32.scalars == [49406, 320, -1, 0])
        // Transposed strides read column-major storage back in row-major order.
        let t = try floats.withUnsafeBytes { try Tensor(shape: [2, 2], strides: [1, 2], scalarType: .float32, bytes: $0) }
        #expect(t.scalars == [1.5, 3.25, -2, 0])
    }

    @Test func shortBufferThrowsInsteadOfReadingPastTheEnd() {
        let words: [UInt16] = [0x3C00, 0x3C00, 0x3C00]
        #expect(throws: TensorError.self) {
            try words.withUnsafeBytes { try Tensor(shape: [2, 2], scalarType: .float16, bytes: $0) }
        }
    }

    @Test func float32BytesAreLittleEndianCOrder() throws {
        let tensor = try Tensor(shape: [2], scalars: [1, -2])
        #expect(tensor.float32Bytes == [0x00, 0x00, 0x80, 0x3F, 0x00, 0x00, 0x00, 0xC0])
        let back = try tensor.float32Bytes.withUnsafeBytes { try Tensor(shape: [2], scalarType: .float32, bytes: $0) }
        #expect(back == tensor)
    }

    @Test func nonFiniteValuesAreCounted() throws {
        let tensor = try Tensor(shape: [4], scalars: [0, .nan, .infinity, 1])
        #expect(!tensor.isFinite && tensor.nonFiniteCount == 2)
        #expect(Tensor(repeating: 1, shape: [3]).isFinite)
    }

    @Test func tokenIdsFollowTheDeclaredInputType() {
        #expect(TokenInputType(declared: .float32) == .float32)
        #expect(TokenInputType(declared: .int32) == .int32)
        #expect(TokenInputType(declared: nil) == .int32)
        #expect(TokenInputType(dtype: "float32") == .float32)
        #expect(TokenInputType(dtype: "int32") == .int32)
        #expect(Float(49407) == 49407 && Float(49406) == 49406)  // ids are exact in float32
    }
}
