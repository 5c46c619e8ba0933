/// SnapFusionKit's version, written as `tool_version` into benchmark and latency-table JSON.
/// Kept equal to the Python package's version (pyproject.toml).
public enum SnapFusionKitVersion {
    public static let string = "0.1.0"
}
