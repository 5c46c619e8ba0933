#if canImport(CoreML)
import CoreML

extension Tensor {
    /// Copies a Core ML array of any element type, strides honoured.
    ///
    /// The bytes are read with `MLMultiArray.withUnsafeBytes(_:)` and converted by
    /// `Tensor(shape:strides:scalarType:bytes:)`: `MLShapedArray<Float>(converting:)` traps on
    /// float16 arrays on iOS 16 and macOS 13, so it is never used for model outputs.
    public init(_ array: MLMultiArray) throws {
        let shape = array.shape.map(\.intValue)
        let strides = array.strides.map(\.intValue)
        guard let scalarType = ScalarType(array.dataType) else {
            throw CoreMLBackendError.unsupportedOutputType(String(describing: array.dataType))
        }
        self = try array.withUnsafeBytes { bytes in
            try Tensor(shape: shape, strides: strides, scalarType: scalarType, bytes: bytes)
        }
    }

    /// A float32 `MLShapedArray` with the same shape and values.
    public var shapedArray: MLShapedArray<Float> {
        MLShapedArray<Float>(scalars: scalars, shape: shape)
    }

    /// A float32 `MLMultiArray` with the same shape and values.
    public var multiArray: MLMultiArray {
        MLMultiArray(shapedArray)
    }
}

extension ScalarType {
    /// The portable element type of a Core ML array type; nil for types a model output cannot
    /// be read as (none today, `@unknown default` for future ones).
    public init?(_ dataType: MLMultiArrayDataType) {
        switch dataType {
        case .float16: self = .float16
        case .float32: self = .float32
        case .double: self = .float64
        case .int32: self = .int32
        @unknown default: return nil
        }
    }
}

extension MLShapedArray where Scalar == Float {
    /// The portable tensor with the same shape and values.
    public var tensor: Tensor {
        Tensor(validShape: shape, scalars: scalars)
    }
}
#endif
