#if canImport(CoreML)
import CoreML

extension Tensor {
    /// Copies a Core ML array of any numeric type (float16 outputs included, strides honoured).
    public init(_ array: MLMultiArray) throws {
        let shaped = MLShapedArray<Float>(converting: array)
        try self.init(shape: shaped.shape, scalars: shaped.scalars)
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

extension MLShapedArray where Scalar == Float {
    /// The portable tensor with the same shape and values.
    public var tensor: Tensor {
        Tensor(validShape: shape, scalars: scalars)
    }
}
#endif
