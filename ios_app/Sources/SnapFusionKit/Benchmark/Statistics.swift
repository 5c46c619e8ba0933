/// Mean and percentiles of a sample, as numpy computes them.
public struct Statistics: Codable, Equatable, Sendable {
    public var mean: Double
    public var p50: Double
    public var p95: Double

    /// Summary of `values` (all zeros for an empty sample).
    public init(_ values: [Double]) {
        guard !values.isEmpty else {
            (mean, p50, p95) = (0, 0, 0)
            return
        }
        mean = values.reduce(0, +) / Double(values.count)
        p50 = Self.percentile(values, 0.50)
        p95 = Self.percentile(values, 0.95)
    }

    /// `numpy.percentile(values, 100 * q)` with the default "linear" method: the value at rank
    /// `(n - 1) q` of the sorted sample, interpolated between its neighbours with numpy's
    /// `_lerp` (which interpolates from the upper neighbour when the fraction is >= 0.5).
    public static func percentile(_ values: [Double], _ q: Double) -> Double {
        let sorted = values.sorted()
        guard sorted.count > 1 else { return sorted.first ?? 0 }
        let rank = Double(sorted.count - 1) * q
        let lower = Int(rank.rounded(.down))
        let upper = min(lower + 1, sorted.count - 1)
        let t = rank - Double(lower)
        let (a, b) = (sorted[lower], sorted[upper])
        let diff = b - a
        return t >= 0.5 ? b - diff * (1 - t) : a + diff * t
    }
}
