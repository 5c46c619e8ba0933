// Type-checking stub of the Core AI API (iOS / iPadOS / macOS 27) that SnapFusionKit's Core AI
// backend calls, for Linux, where the framework does not exist. Declarations only; nothing here
// runs. Every signature is the one on Apple's documentation page cited above it (availability:
// iOS 27 / macOS 27), reduced to what the backend uses; Core AI's ownership annotations
// (`consuming`, `borrowing`) are left out where they do not change how the backend calls it.
// Add a declaration (with its page) when the code calls something new.
@_exported import Foundation

// https://developer.apple.com/documentation/coreai/aimodel
public struct AIModel {
    // https://developer.apple.com/documentation/coreai/aimodel/init(contentsof:options:)
    public init(contentsOf modelURL: URL, options: SpecializationOptions = .default) async throws { fatalError() }
    // https://developer.apple.com/documentation/coreai/aimodel/loadfunction(named:)
    public func loadFunction(named functionName: String) throws -> InferenceFunction? { fatalError() }
    // https://developer.apple.com/documentation/coreai/aimodel/functionnames
    public var functionNames: [String] { fatalError() }
}

// The `options` parameter of init(contentsOf:options:) (its `.default` value).
public struct SpecializationOptions: Sendable {
    public static var `default`: SpecializationOptions { fatalError() }
}

// https://developer.apple.com/documentation/coreai/inferencefunction ("This type is Sendable")
public struct InferenceFunction: Sendable {
    // https://developer.apple.com/documentation/coreai/inferencefunction/run(inputs:states:outputviews:)-mqfb
    public func run(inputs: [String: NDArray], states: MutableViews = MutableViews(),
                    outputViews: MutableViews = MutableViews()) async throws -> Outputs { fatalError() }

    // The defaults of run's `states` and `outputViews` (`MutableViews()`).
    public struct MutableViews {
        public init() {}
    }

    // https://developer.apple.com/documentation/coreai/inferencefunction/outputs
    public struct Outputs {
        // https://developer.apple.com/documentation/coreai/inferencefunction/outputs/remove(_:)
        public mutating func remove(_ name: String) -> InferenceValue? { fatalError() }
        // https://developer.apple.com/documentation/coreai/inferencefunction/outputs/names
        public var names: [String] { fatalError() }
    }
}

// https://developer.apple.com/documentation/coreai/inferencevalue
public struct InferenceValue {
    // https://developer.apple.com/documentation/coreai/inferencevalue/ndarray
    public var ndArray: NDArray? { fatalError() }
}

// https://developer.apple.com/documentation/coreai/ndarray
public struct NDArray {
    // https://developer.apple.com/documentation/coreai/ndarray/init(scalars:shape:)
    public init<Scalar: BitwiseCopyable>(scalars: some Sequence<Scalar>, shape: [Int]) { fatalError() }
    // https://developer.apple.com/documentation/coreai/ndarray/shape
    public var shape: [Int] { fatalError() }
    // https://developer.apple.com/documentation/coreai/ndarray/scalartype-swift.property
    public var scalarType: ScalarType { fatalError() }
    // https://developer.apple.com/documentation/coreai/ndarray/rawview()
    public func rawView() -> RawView { fatalError() }

    // https://developer.apple.com/documentation/coreai/ndarray/scalartype-swift.enum (`.float32` as used in
    // https://developer.apple.com/documentation/coreai/ndarray/rawview/init(bytes:byteoffset:scalartype:shape:strides:interleavelayout:))
    public enum ScalarType: Sendable {
        case float32
    }

    // https://developer.apple.com/documentation/coreai/ndarray/rawview
    public struct RawView {
        // https://developer.apple.com/documentation/coreai/ndarray/rawview/withunsafebytes(_:)
        public func withUnsafeBytes<R, E>(_ body: (UnsafeRawPointer, Span<Int>, Span<Int>) throws(E) -> R) throws(E) -> R
            where E: Error { fatalError() }
    }
}
