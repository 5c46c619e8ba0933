/// SnapFusionKit's version, written as `tool_version` into benchmark and latency-table JSON.
///
/// The same value as the Python package (`pyproject.toml`, `snapfusion_coreml.__version__`) and the
/// sample app's display version; tests/test_version.py fails when they differ. Releases are tagged
/// with it, so `.package(url:from:)` resolves it.
public enum SnapFusionKitVersion {
    public static let string = "0.2.0"
}
