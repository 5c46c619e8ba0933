// Type-checking stub of the CoreGraphics API that SnapFusionKit calls, for Linux, where
// CoreGraphics does not exist. Declarations only; nothing here runs. Every signature is copied
// from Apple's documentation page cited above it, so a renamed or mistyped call in
// Sources/SnapFusionKit fails `ios_app/scripts/typecheck-apple.sh` here as it would in Xcode.
// Add a declaration (with its page) when the code starts calling something new.
@_exported import Foundation

// https://developer.apple.com/documentation/corefoundation/cfdata (toll-free bridged with NSData)
public typealias CFData = NSData
// https://developer.apple.com/documentation/corefoundation/cfstring (toll-free bridged with NSString)
public typealias CFString = NSString

// https://developer.apple.com/documentation/coregraphics/cgfloat (Foundation's CGFloat on Linux)

// https://developer.apple.com/documentation/coregraphics/cgcolorspace
public final class CGColorSpace {
    // https://developer.apple.com/documentation/coregraphics/cgcolorspace/init(name:)
    public init?(name: CFString) { fatalError("stub") }
    // https://developer.apple.com/documentation/coregraphics/cgcolorspace/srgb
    // (declared `class let sRGB: CFString`; a computed property reads the same at call sites)
    public class var sRGB: CFString { "kCGColorSpaceSRGB" as NSString }
}

// https://developer.apple.com/documentation/coregraphics/cgdataprovider
public final class CGDataProvider {
    // https://developer.apple.com/documentation/coregraphics/cgdataprovider/init(data:)
    public init?(data: CFData) { fatalError("stub") }
}

// https://developer.apple.com/documentation/coregraphics/cgbitmapinfo
public struct CGBitmapInfo: OptionSet, Sendable {
    public let rawValue: UInt32
    // https://developer.apple.com/documentation/coregraphics/cgbitmapinfo/init(rawvalue:)
    public init(rawValue: UInt32) { self.rawValue = rawValue }
}

// https://developer.apple.com/documentation/coregraphics/cgimagealphainfo
public enum CGImageAlphaInfo: UInt32, Sendable {
    case none = 0, premultipliedLast, premultipliedFirst, last, first, noneSkipLast, noneSkipFirst, alphaOnly
}

// https://developer.apple.com/documentation/coregraphics/cgcolorrenderingintent
public enum CGColorRenderingIntent: Int32, Sendable {
    case defaultIntent = 0, absoluteColorimetric, relativeColorimetric, perceptual, saturation
}

// https://developer.apple.com/documentation/coregraphics/cgimage
public final class CGImage {
    // https://developer.apple.com/documentation/coregraphics/cgimage/init(width:height:bitspercomponent:bitsperpixel:bytesperrow:space:bitmapinfo:provider:decode:shouldinterpolate:intent:)
    public init?(width: Int, height: Int, bitsPerComponent: Int, bitsPerPixel: Int, bytesPerRow: Int,
                 space: CGColorSpace, bitmapInfo: CGBitmapInfo, provider: CGDataProvider,
                 decode: UnsafePointer<CGFloat>?, shouldInterpolate: Bool, intent: CGColorRenderingIntent) { fatalError("stub") }
    // https://developer.apple.com/documentation/coregraphics/cgimage/width
    public var width: Int { fatalError("stub") }
    // https://developer.apple.com/documentation/coregraphics/cgimage/height
    public var height: Int { fatalError("stub") }
}

// https://developer.apple.com/documentation/coregraphics/cginterpolationquality
public enum CGInterpolationQuality: Int32, Sendable {
    case `default` = 0, none = 1, low = 2, high = 3, medium = 4
}

// https://developer.apple.com/documentation/coregraphics/cgcontext
public final class CGContext {
    // https://developer.apple.com/documentation/coregraphics/cgcontext/init(data:width:height:bitspercomponent:bytesperrow:space:bitmapinfo:)-4fn0t
    public init?(data: UnsafeMutableRawPointer?, width: Int, height: Int, bitsPerComponent: Int, bytesPerRow: Int,
                 space: CGColorSpace, bitmapInfo: UInt32) { fatalError("stub") }
    // https://developer.apple.com/documentation/coregraphics/cgcontext/interpolationquality
    public var interpolationQuality: CGInterpolationQuality { get { fatalError("stub") } set { fatalError("stub") } }
    // https://developer.apple.com/documentation/coregraphics/cgcontext/draw(_:in:byTiling:)
    public func draw(_ image: CGImage, in rect: CGRect, byTiling: Bool = false) { fatalError("stub") }
}
