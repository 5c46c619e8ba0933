/// IEEE 754 binary16 decoding done by hand, so float16 model outputs are read the same way on
/// every OS version and CPU (no `Float16` type or framework conversion involved).
///
/// Why: `MLShapedArray<Float>(converting:)` traps on a float16 `MLMultiArray` on iOS 16 and
/// macOS 13 (documented in Apple's ml-stable-diffusion and coremltools issue trackers), and Swift's
/// `Float16` is unavailable on macOS x86_64. The Core ML backend reads the raw 16-bit words and
/// converts them here.
public enum HalfPrecision {
    /// The float32 value of the binary16 bit pattern `bits` (exact: every half is a float).
    ///
    /// Subnormals, infinities and NaN (payload kept in the high mantissa bits) are handled.
    public static func float(fromBits bits: UInt16) -> Float {
        let sign = UInt32(bits & 0x8000) << 16
        let exponent = Int((bits >> 10) & 0x1F)
        let mantissa = UInt32(bits & 0x03FF)
        switch exponent {
        case 0:
            // Zero or subnormal: mantissa * 2^-24, exact in float32.
            let magnitude = Float(mantissa) * 0x1p-24
            return sign == 0 ? magnitude : -magnitude
        case 0x1F:
            // Infinity (mantissa 0) or NaN.
            return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13))
        default:
            // Normal: rebias the exponent from 15 to 127.
            return Float(bitPattern: sign | (UInt32(exponent - 15 + 127) << 23) | (mantissa << 13))
        }
    }

    /// Converts `count` binary16 words into float32.
    public static func floats<C: Collection>(fromBits words: C) -> [Float] where C.Element == UInt16 {
        words.map(float(fromBits:))
    }
}

/// Reads the elements of a strided multi-dimensional buffer in row-major order.
///
/// Core ML arrays may be padded (`strides` larger than the packed ones); the contiguous copy the
/// pipeline works on must skip the padding.
public enum StridedLayout {
    /// The packed (row-major) strides of `shape`.
    public static func packedStrides(_ shape: [Int]) -> [Int] {
        var strides = [Int](repeating: 1, count: shape.count)
        var running = 1
        for axis in shape.indices.reversed() {
            strides[axis] = running
            running *= shape[axis]
        }
        return strides
    }

    /// Calls `read` with the buffer offset of every element in row-major order and collects the
    /// values: `(shape.product)` results. Throws when `strides` does not match `shape`.
    public static func gather<T>(shape: [Int], strides: [Int], _ read: (Int) throws -> T) throws -> [T] {
        guard strides.count == shape.count, shape.allSatisfy({ $0 >= 0 }) else {
            throw TensorError.rankMismatch(expected: shape.count, shape: strides)
        }
        let count = shape.reduce(1, *)
        var values: [T] = []
        values.reserveCapacity(count)
        guard count > 0 else { return values }
        if strides == packedStrides(shape) {
            for offset in 0..<count { values.append(try read(offset)) }
            return values
        }
        var index = [Int](repeating: 0, count: shape.count)
        for _ in 0..<count {
            var offset = 0
            for axis in shape.indices { offset += index[axis] * strides[axis] }
            values.append(try read(offset))
            var axis = shape.count - 1
            while axis >= 0 {
                index[axis] += 1
                if index[axis] < shape[axis] { break }
                index[axis] = 0
                axis -= 1
            }
        }
        return values
    }
}

/// The element types a model output can have (Core ML's `MLMultiArrayDataType` cases).
public enum ScalarType: String, Sendable, CaseIterable {
    case float16, float32, float64, int32

    /// Bytes per element.
    public var byteCount: Int {
        switch self {
        case .float16: return 2
        case .float32, .int32: return 4
        case .float64: return 8
        }
    }
}

extension Tensor {
    /// A float32 tensor from the raw little-endian bytes of a strided buffer of `scalarType`
    /// (strides in elements, packed if nil): how the Core ML backend reads every output, float16
    /// included, without Core ML's own conversion.
    ///
    /// - Throws: `TensorError.shapeMismatch` when `bytes` is too short for `shape` and `strides`.
    public init(shape: [Int], strides: [Int]? = nil, scalarType: ScalarType, bytes: UnsafeRawBufferPointer) throws {
        let strides = strides ?? StridedLayout.packedStrides(shape)
        let last = zip(shape, strides).map { $0 > 0 ? ($0 - 1) * $1 : 0 }.reduce(0, +)
        guard shape.reduce(1, *) == 0 || (last + 1) * scalarType.byteCount <= bytes.count else {
            throw TensorError.shapeMismatch(expected: shape, count: bytes.count / scalarType.byteCount)
        }
        let size = scalarType.byteCount
        let values: [Float] = try StridedLayout.gather(shape: shape, strides: strides) { offset in
            let at = offset * size
            switch scalarType {
            case .float16: return HalfPrecision.float(fromBits: UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt16.self)))
            case .float32: return Float(bitPattern: UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt32.self)))
            case .float64: return Float(Double(bitPattern: UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt64.self))))
            case .int32: return Float(Int32(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: Int32.self)))
            }
        }
        try self.init(shape: shape, scalars: values)
    }

    /// Whether every value is finite (no NaN or infinity).
    public var isFinite: Bool {
        scalars.allSatisfy(\.isFinite)
    }

    /// How many values are NaN or infinite.
    public var nonFiniteCount: Int {
        scalars.reduce(0) { $0 + ($1.isFinite ? 0 : 1) }
    }

    /// The scalars as raw little-endian float32 bytes (C order).
    public var float32Bytes: [UInt8] {
        var bytes = [UInt8]()
        bytes.reserveCapacity(count * 4)
        for value in scalars {
            let bits = value.bitPattern.littleEndian
            withUnsafeBytes(of: bits) { bytes.append(contentsOf: $0) }
        }
        return bytes
    }
}
