// swift-tools-version: 6.0
// SnapFusionKit for apps: add this repository with Xcode's "Add Package Dependency" or
// `.package(url: "<this repository>", branch: "main")` (a revision, or `from:` a version once
// one is tagged: docs/releasing.md). Needs Xcode 16.0 or later. The sources live in ios_app/ (the
// development package there adds the snapfusion-cli executable and the tests); this manifest
// only exposes the library. The Core ML backend compiles where Core ML exists (iOS 16+, macOS 13+).
import PackageDescription

let package = Package(
    name: "SnapFusionKit",
    platforms: [.iOS(.v16), .macOS(.v13)],
    products: [
        .library(name: "SnapFusionKit", targets: ["SnapFusionKit"]),
    ],
    targets: [
        .target(name: "SnapFusionKit", path: "ios_app/Sources/SnapFusionKit",
                // The privacy manifest of the required-reason APIs the library calls (file timestamps).
                resources: [.copy("PrivacyInfo.xcprivacy")]),
    ],
    swiftLanguageModes: [.v6]
)
