import CoreGraphics
import ImageIO
import SwiftUI
import UniformTypeIdentifiers

/// A generated image exported as a PNG file (Save to Files). Holds bytes encoded once by
/// `encode(_:)` off the main thread, never re-encoded while the view redraws.
struct PNGDocument: FileDocument {
    static var readableContentTypes: [UTType] { [.png] }

    let data: Data

    /// PNG bytes of `image` (ImageIO); empty if encoding fails.
    nonisolated static func encode(_ image: CGImage) -> Data {
        let output = NSMutableData()
        if let destination = CGImageDestinationCreateWithData(output as CFMutableData, UTType.png.identifier as CFString, 1, nil) {
            CGImageDestinationAddImage(destination, image, nil)
            CGImageDestinationFinalize(destination)
        }
        return output as Data
    }

    init(data: Data) {
        self.data = data
    }

    init(configuration: ReadConfiguration) throws {
        guard let data = configuration.file.regularFileContents else { throw CocoaError(.fileReadCorruptFile) }
        self.data = data
    }

    func fileWrapper(configuration: WriteConfiguration) throws -> FileWrapper {
        FileWrapper(regularFileWithContents: data)
    }
}
