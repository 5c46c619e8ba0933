import Foundation

/// A thread-safe flag that stops a running generation at the next stage boundary.
///
/// The pipeline also honours Swift concurrency: cancelling the `Task` that runs it has the
/// same effect.
public final class CancellationToken: @unchecked Sendable {
    private let lock = NSLock()
    private var cancelled = false

    /// A token that is not cancelled.
    public init() {}

    /// Requests cancellation; the pipeline throws `PipelineError.cancelled` at its next check.
    public func cancel() {
        lock.lock()
        cancelled = true
        lock.unlock()
    }

    /// Whether `cancel()` was called.
    public var isCancelled: Bool {
        lock.lock()
        defer { lock.unlock() }
        return cancelled
    }
}
