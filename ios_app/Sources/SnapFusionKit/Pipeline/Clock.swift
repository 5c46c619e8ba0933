import Dispatch

/// A monotonic time source in milliseconds; injectable so timing code is testable.
public protocol MillisecondClock: AnyObject, Sendable {
    /// Milliseconds since an arbitrary fixed origin; never decreases.
    func now() -> Double
}

/// The system's monotonic clock.
public final class MonotonicClock: MillisecondClock {
    /// The clock of `DispatchTime` (uptime, not wall time).
    public init() {}

    public func now() -> Double {
        Double(DispatchTime.now().uptimeNanoseconds) / 1_000_000
    }
}

extension MillisecondClock {
    /// Runs `body` and returns its result with the elapsed milliseconds.
    func measure<T>(_ body: () throws -> T) rethrows -> (T, Double) {
        let start = now()
        let value = try body()
        return (value, now() - start)
    }
}
