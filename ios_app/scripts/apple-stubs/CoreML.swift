// Type-checking stub of the Core ML API that SnapFusionKit calls, for Linux, where Core ML does
// not exist. Declarations only; nothing here runs. Every signature is copied from Apple's
// documentation page cited above it (availability: iOS 16 / macOS 13 or earlier unless noted),
// so a renamed or mistyped call in Sources/SnapFusionKit fails
// `ios_app/scripts/typecheck-apple.sh` here as it would in Xcode. Built with
// -enable-library-evolution so enums are non-frozen like Objective-C NS_ENUMs (`@unknown default`
// is required, as in Xcode). Add a declaration (with its page) when the code calls something new.
@_exported import Foundation

// https://developer.apple.com/documentation/objectivec/1460484-autoreleasepool
// (module ObjectiveC on Apple platforms, re-exported by Foundation; absent on Linux)
public func autoreleasepool<Result>(invoking body: () throws -> Result) rethrows -> Result { try body() }

// https://developer.apple.com/documentation/coreml/mlcomputeunits
public enum MLComputeUnits: Int, Sendable {
    case cpuOnly = 0, cpuAndGPU = 1, all = 2
    // https://developer.apple.com/documentation/coreml/mlcomputeunits/cpuandneuralengine (iOS 16, macOS 13)
    case cpuAndNeuralEngine = 3
}

// https://developer.apple.com/documentation/coreml/mlmultiarraydatatype
public enum MLMultiArrayDataType: Int, Sendable {
    case double = 65600, float32 = 65568, int32 = 131104
    // https://developer.apple.com/documentation/coreml/mlmultiarraydatatype/float16 (iOS 16, macOS 13)
    case float16 = 65552
    // https://developer.apple.com/documentation/coreml/mlmultiarraydatatype/float64
    public static var float64: MLMultiArrayDataType { .double }
    // https://developer.apple.com/documentation/coreml/mlmultiarraydatatype/float
    public static var float: MLMultiArrayDataType { .float32 }
}

// https://developer.apple.com/documentation/coreml/mlmodelconfiguration
open class MLModelConfiguration: NSObject, @unchecked Sendable {
    // https://developer.apple.com/documentation/coreml/mlmodelconfiguration/computeunits
    open var computeUnits: MLComputeUnits = .all
    // https://developer.apple.com/documentation/coreml/mlmodelconfiguration/functionname (iOS 18, macOS 15)
    @available(iOS 18.0, macOS 15.0, tvOS 18.0, watchOS 11.0, visionOS 2.0, *)
    open var functionName: String? = nil
    public override init() {}
}

// https://developer.apple.com/documentation/coreml/mlmultiarrayconstraint
open class MLMultiArrayConstraint: NSObject, @unchecked Sendable {
    // https://developer.apple.com/documentation/coreml/mlmultiarrayconstraint/datatype
    open var dataType: MLMultiArrayDataType { fatalError("stub") }
    // https://developer.apple.com/documentation/coreml/mlmultiarrayconstraint/shape
    open var shape: [NSNumber] { fatalError("stub") }
}

// https://developer.apple.com/documentation/coreml/mlfeaturedescription
open class MLFeatureDescription: NSObject, @unchecked Sendable {
    // https://developer.apple.com/documentation/coreml/mlfeaturedescription/name
    open var name: String { fatalError("stub") }
    // https://developer.apple.com/documentation/coreml/mlfeaturedescription/multiarrayconstraint
    open var multiArrayConstraint: MLMultiArrayConstraint? { fatalError("stub") }
}

// https://developer.apple.com/documentation/coreml/mlmodeldescription
open class MLModelDescription: NSObject, @unchecked Sendable {
    // https://developer.apple.com/documentation/coreml/mlmodeldescription/inputdescriptionsbyname
    open var inputDescriptionsByName: [String: MLFeatureDescription] { fatalError("stub") }
    // https://developer.apple.com/documentation/coreml/mlmodeldescription/outputdescriptionsbyname
    open var outputDescriptionsByName: [String: MLFeatureDescription] { fatalError("stub") }
}

// https://developer.apple.com/documentation/coreml/mlshapedarrayscalar
public protocol MLShapedArrayScalar {}
extension Float: MLShapedArrayScalar {}
extension Double: MLShapedArrayScalar {}
extension Int32: MLShapedArrayScalar {}

// https://developer.apple.com/documentation/coreml/mlshapedarray
public struct MLShapedArray<Scalar: MLShapedArrayScalar> {
    // https://developer.apple.com/documentation/coreml/mlshapedarray/init(scalars:shape:)
    public init<S: Sequence>(scalars: S, shape: [Int]) where S.Element == Scalar { fatalError("stub") }
    // https://developer.apple.com/documentation/coreml/mlshapedarray/shape
    public var shape: [Int] { fatalError("stub") }
    // https://developer.apple.com/documentation/coreml/mlshapedarray/scalars
    public var scalars: [Scalar] { fatalError("stub") }
}

// https://developer.apple.com/documentation/coreml/mlmultiarray
open class MLMultiArray: NSObject, @unchecked Sendable {
    // https://developer.apple.com/documentation/coreml/mlmultiarray/init(_:)-2k7ue (MLShapedArray -> MLMultiArray)
    public convenience init<Scalar: MLShapedArrayScalar>(_ shapedArray: MLShapedArray<Scalar>) { fatalError("stub") }
    // https://developer.apple.com/documentation/coreml/mlmultiarray/shape
    open var shape: [NSNumber] { fatalError("stub") }
    // https://developer.apple.com/documentation/coreml/mlmultiarray/strides
    open var strides: [NSNumber] { fatalError("stub") }
    // https://developer.apple.com/documentation/coreml/mlmultiarray/datatype
    open var dataType: MLMultiArrayDataType { fatalError("stub") }
    // https://developer.apple.com/documentation/coreml/mlmultiarray/withunsafebytes(_:) (iOS 15.4, macOS 12.3)
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R { fatalError("stub") }
}

// https://developer.apple.com/documentation/coreml/mlfeaturevalue
open class MLFeatureValue: NSObject, @unchecked Sendable {
    // https://developer.apple.com/documentation/coreml/mlfeaturevalue/init(multiarray:)
    public convenience init(multiArray value: MLMultiArray) { fatalError("stub") }
    // https://developer.apple.com/documentation/coreml/mlfeaturevalue/multiarrayvalue
    open var multiArrayValue: MLMultiArray? { fatalError("stub") }
}

// https://developer.apple.com/documentation/coreml/mlfeatureprovider
public protocol MLFeatureProvider {
    // https://developer.apple.com/documentation/coreml/mlfeatureprovider/featurenames
    var featureNames: Set<String> { get }
    // https://developer.apple.com/documentation/coreml/mlfeatureprovider/featurevalue(for:)
    func featureValue(for featureName: String) -> MLFeatureValue?
}

// https://developer.apple.com/documentation/coreml/mldictionaryfeatureprovider
open class MLDictionaryFeatureProvider: NSObject, MLFeatureProvider, @unchecked Sendable {
    // https://developer.apple.com/documentation/coreml/mldictionaryfeatureprovider/init(dictionary:)
    public init(dictionary: [String: Any]) throws { fatalError("stub") }
    open var featureNames: Set<String> { fatalError("stub") }
    open func featureValue(for featureName: String) -> MLFeatureValue? { fatalError("stub") }
}

// https://developer.apple.com/documentation/coreml/mlmodel
open class MLModel: NSObject, @unchecked Sendable {
    // https://developer.apple.com/documentation/coreml/mlmodel/init(contentsof:configuration:)
    public convenience init(contentsOf url: URL, configuration: MLModelConfiguration) throws { fatalError("stub") }
    // https://developer.apple.com/documentation/coreml/mlmodel/modeldescription
    open var modelDescription: MLModelDescription { fatalError("stub") }
    // https://developer.apple.com/documentation/coreml/mlmodel/prediction(from:)
    open func prediction(from input: MLFeatureProvider) throws -> MLFeatureProvider { fatalError("stub") }
    // https://developer.apple.com/documentation/coreml/mlmodel/compilemodel(at:)-6442s
    open class func compileModel(at modelURL: URL) throws -> URL { fatalError("stub") }
    // https://developer.apple.com/documentation/coreml/mlmodel/compilemodel(at:)-45ao6 (iOS 16, macOS 13)
    open class func compileModel(at url: URL) async throws -> URL { fatalError("stub") }
}
