// swift-tools-version: 5.9
// The SnapFusion sample app as an app package: open this folder in Xcode 16 or later and run it
// on an iPhone; no project file is needed. It uses SnapFusionKit from ../.. by path, which Swift
// Playgrounds does not resolve (it opens only self-contained app packages), so Xcode is required.
import AppleProductTypes
import PackageDescription

let package = Package(
    name: "SnapFusionApp",
    platforms: [.iOS("16.0")],
    products: [
        .iOSApplication(
            name: "SnapFusion",
            targets: ["AppModule"],
            bundleIdentifier: "org.snapfusion-coreml.SnapFusionApp",
            displayVersion: "0.2.0",
            bundleVersion: "1",
            appIcon: .placeholder(icon: .sparkle),
            accentColor: .presetColor(.indigo),
            supportedDeviceFamilies: [.pad, .phone],
            supportedInterfaceOrientations: [
                .portrait,
                .landscapeRight,
                .landscapeLeft,
                .portraitUpsideDown(.when(deviceFamilies: [.pad])),
            ],
            // The share sheet's "Save Image" writes to the photo library; without this purpose
            // string (NSPhotoLibraryAddUsageDescription) iOS terminates the app when it is tapped.
            capabilities: [
                .photoLibraryAdd(purposeString: "Saves the images you generate to your photo library."),
            ]
        ),
    ],
    dependencies: [
        .package(path: "../.."),
    ],
    targets: [
        .executableTarget(
            name: "AppModule",
            dependencies: [.product(name: "SnapFusionKit", package: "ios_app")],
            path: "Sources",
            // Put a converted folder's files (pipeline.json, *.mlpackage or *.mlmodelc, vocab.json,
            // merges.txt) into Sources/Model to ship it inside the app; see Model/README.md.
            resources: [.copy("Model"), .copy("PrivacyInfo.xcprivacy")]
        ),
    ]
)
