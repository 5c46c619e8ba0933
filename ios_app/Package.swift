// swift-tools-version: 5.9
// SnapFusionKit: run a converted snapfusion-coreml folder (pipeline.json + Core ML packages) on
// iPhone, iPad and Mac. The portable core (tokenizer, sampler, RNG, pipeline, benchmark harness)
// builds and is tested on Linux; the Core ML backend is compiled only where Core ML exists.
import PackageDescription

let package = Package(
    name: "SnapFusionKit",
    platforms: [.iOS(.v16), .macOS(.v13)],
    products: [
        .library(name: "SnapFusionKit", targets: ["SnapFusionKit"]),
        .executable(name: "snapfusion-cli", targets: ["snapfusion-cli"]),
    ],
    targets: [
        .target(name: "SnapFusionKit", path: "Sources/SnapFusionKit"),
        .executableTarget(name: "snapfusion-cli", dependencies: ["SnapFusionKit"], path: "Sources/snapfusion-cli"),
        .testTarget(name: "SnapFusionKitTests", dependencies: ["SnapFusionKit"], path: "Tests/SnapFusionKitTests"),
    ]
)
