import CoreGraphics
import ImageIO
import SwiftUI
import UniformTypeIdentifiers

/// A generated image exported as a PNG file (Save to Files).
struct PNGDocument: FileDocument {
    static var readableContentTypes: [UTType] { [.png] }

    let data: Data

    init(image: CGImage) {
        let output = NSMutableData()
        if let destination = CGImageDestinationCreateWithData(output as CFMutableData, UTType.png.identifier as CFString, 1, nil) {
            CGImageDestinationAddImage(destination, image, nil)
            CGImageDestinationFinalize(destination)
        }
        data = output as Data
    }

    init(configuration: ReadConfiguration) throws {
        guard let data = configuration.file.regularFileContents else { throw CocoaError(.fileReadCorruptFile) }
        self.data = data
    }

    func fileWrapper(configuration: WriteConfiguration) throws -> FileWrapper {
        FileWrapper(regularFileWithContents: data)
    }
}
