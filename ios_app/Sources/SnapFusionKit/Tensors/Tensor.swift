import Foundation

/// A dense, row-major float32 array with a shape: the one tensor type of the portable core.
///
/// Backends convert it to and from their own types (`MLMultiArray` for Core ML). Layouts follow
/// docs/contracts.md: latents `(B, 4, h, w)`, text embeddings `(1, 77, D)` from the text encoder
/// and `(B, D, 1, 77)` into the UNet, images `(1, 3, H, W)` in [-1, 1].
public struct Tensor: Equatable, Sendable {
    /// Extent of every dimension, outermost first.
    public let shape: [Int]
    /// `shape.reduce(1, *)` values in row-major order.
    public var scalars: [Float]

    /// Wraps `scalars`; throws when their count does not match `shape`.
    public init(shape: [Int], scalars: [Float]) throws {
        guard shape.allSatisfy({ $0 >= 0 }), shape.reduce(1, *) == scalars.count else {
            throw TensorError.shapeMismatch(expected: shape, count: scalars.count)
        }
        self.shape = shape
        self.scalars = scalars
    }

    /// For callers that computed `scalars` from `shape` themselves.
    init(validShape shape: [Int], scalars: [Float]) {
        precondition(shape.reduce(1, *) == scalars.count, "internal shape computation is wrong")
        self.shape = shape
        self.scalars = scalars
    }

    /// A tensor of `shape` filled with `value`.
    public init(repeating value: Float, shape: [Int]) {
        self.shape = shape
        self.scalars = [Float](repeating: value, count: shape.reduce(1, *))
    }

    /// Number of elements.
    public var count: Int { scalars.count }

    /// The leading (batch) dimension.
    public var batch: Int { shape.first ?? 1 }

    /// Item `index` of the leading dimension, keeping a leading dimension of 1.
    public func batchItem(_ index: Int) throws -> Tensor {
        guard let b = shape.first, (0..<b).contains(index) else {
            throw TensorError.batchIndexOutOfRange(index: index, shape: shape)
        }
        let size = count / b
        return try Tensor(shape: [1] + shape.dropFirst(), scalars: Array(scalars[index * size..<(index + 1) * size]))
    }

    /// Concatenates tensors along the leading dimension; the other dimensions must agree.
    public static func concatenateBatch(_ parts: [Tensor]) throws -> Tensor {
        guard let first = parts.first else { throw TensorError.empty }
        let inner = Array(first.shape.dropFirst())
        var scalars: [Float] = []
        var batch = 0
        for part in parts {
            guard Array(part.shape.dropFirst()) == inner else {
                throw TensorError.incompatibleShapes(first.shape, part.shape)
            }
            scalars += part.scalars
            batch += part.batch
        }
        return try Tensor(shape: [batch] + inner, scalars: scalars)
    }

    /// `(B, S, D)` -> `(B, D, 1, S)`: the text encoder's hidden states in the UNet's layout
    /// (Apple's channels-first `BC1S`, so the last axis is the contiguous sequence).
    public func sequenceToChannelsFirst() throws -> Tensor {
        guard shape.count == 3 else { throw TensorError.rankMismatch(expected: 3, shape: shape) }
        let (b, s, d) = (shape[0], shape[1], shape[2])
        var out = [Float](repeating: 0, count: count)
        for bi in 0..<b {
            for si in 0..<s {
                for di in 0..<d {
                    out[(bi * d + di) * s + si] = scalars[(bi * s + si) * d + di]
                }
            }
        }
        return try Tensor(shape: [b, d, 1, s], scalars: out)
    }

    /// Elementwise `self * factor`, computed in float32.
    public func scaled(by factor: Float) -> Tensor {
        var copy = self
        for i in copy.scalars.indices { copy.scalars[i] *= factor }
        return copy
    }
}

/// Errors about tensor shapes.
public enum TensorError: LocalizedError, Equatable {
    case shapeMismatch(expected: [Int], count: Int)
    case incompatibleShapes([Int], [Int])
    case rankMismatch(expected: Int, shape: [Int])
    case batchIndexOutOfRange(index: Int, shape: [Int])
    case empty

    public var errorDescription: String? {
        switch self {
        case let .shapeMismatch(shape, count):
            return "expected \(shape.reduce(1, *)) values for shape \(shape), got \(count)"
        case let .incompatibleShapes(a, b):
            return "expected tensors with matching inner dimensions, got shapes \(a) and \(b)"
        case let .rankMismatch(rank, shape):
            return "expected a tensor of rank \(rank), got shape \(shape)"
        case let .batchIndexOutOfRange(index, shape):
            return "batch index \(index) is out of range for shape \(shape)"
        case .empty:
            return "expected at least one tensor"
        }
    }
}
