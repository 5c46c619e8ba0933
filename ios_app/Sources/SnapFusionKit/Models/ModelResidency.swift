import Foundation

/// A model that can be brought into memory and released: one Core ML model in the Core ML
/// backend, a fake in the tests.
public protocol LoadableModel: AnyObject, Sendable {
    /// Whether the model is in memory now.
    var isLoaded: Bool { get }
    /// Brings the model into memory (no-op when loaded).
    func load() throws
    /// Releases the model's memory (no-op when not loaded). Must not wait for a load or a
    /// prediction of this model in progress: it releases the model when that ends (the Core ML
    /// model queues the release behind it), so it can be called from the main thread.
    func unload()
    /// Releases the model and returns once its memory is released (after a prediction in
    /// progress). Used between stages in reduce-memory mode and by `prewarm()`, so two
    /// components are never resident together; never called from `ModelResidency.unload()`.
    func unloadNow()
}

extension LoadableModel {
    /// For models whose `unload()` releases at once.
    public func unloadNow() { unload() }
}

/// Which models of a pipeline are in memory, in one of two modes.
///
/// Memory held (M = a model's loaded size):
/// - normal: after `load()` or `prewarm()`, text encoder + UNet (all chunks) + decoder stay
///   resident: M(text encoder) + M(UNet) + M(decoder); no load during generation. An on-demand
///   component (the VAE encoder) joins them at its first `prepare(_:)` (the first image-to-image).
/// - reduce memory: at most one component at a time, max(M(text encoder), M(UNet), M(decoder)).
///   `load()` makes the first stage's model (the text encoder) resident; each stage then releases
///   the previous component before loading its own (`prepare(_:)`), so every generation loads
///   the UNet and decoder once.
///
/// `prewarm()` loads and releases every model once, one at a time (the device specializes and
/// caches each program on first load, Apple's prewarm pattern for the Neural Engine), and then
/// leaves the models as `load()` does: ready to generate, never empty.
///
/// `unload()` never waits: loads are serialized by a lock that `unload()` does not take. It
/// marks every load that started before it as abandoned and releases the models; a load waiting
/// for the lock is skipped, a load in progress releases what it loaded as soon as its current
/// model is in memory (one model load cannot be interrupted), and both throw
/// `ModelResidencyError.unloadedWhileLoading`. A load that starts after `unload()` proceeds.
public final class ModelResidency<Model: LoadableModel>: @unchecked Sendable {
    /// Keep one component in memory at a time.
    public let reduceMemory: Bool
    /// The models of each component, in stage order (text encoder, image encoder, UNet chunks, decoder).
    public let components: [(name: PipelineDescription.ComponentName, models: [Model])]
    /// Components that `load()` leaves out in normal mode: they load on their first `prepare(_:)`
    /// and then stay (the VAE encoder: only image-to-image needs it).
    public let onDemand: Set<PipelineDescription.ComponentName>
    /// Serializes loads (held across them, possibly for a minute); `unload()` never takes it.
    private let lock = NSRecursiveLock()
    /// Guards `unloads`; held for a few instructions only.
    private let counter = NSLock()
    /// How many times `unload()` was called: a load remembers the count when it is called and is
    /// abandoned when the count has moved on.
    private var unloads = 0

    /// Residency over `components` (stage order); `onDemand` components load on first use.
    public init(components: [(name: PipelineDescription.ComponentName, models: [Model])], reduceMemory: Bool,
                onDemand: Set<PipelineDescription.ComponentName> = []) {
        self.components = components
        self.reduceMemory = reduceMemory
        self.onDemand = onDemand
    }

    /// Every model, in stage order.
    public var allModels: [Model] { components.flatMap(\.models) }

    /// Normal mode: loads every model. Reduce memory: loads the first component only.
    public func load() throws {
        try exclusive { ticket in try loadLocked(ticket) }
    }

    /// Loads and releases each model that is not in memory, one at a time, then `load()`.
    public func prewarm() throws {
        try exclusive { ticket in
            for model in allModels where !model.isLoaded {
                try model.load()
                model.unloadNow()
                try checkpoint(ticket)
            }
            try loadLocked(ticket)
        }
    }

    /// Releases every model without waiting for loads or predictions in progress (see the type's
    /// documentation); safe to call from the main thread.
    public func unload() {
        counter.lock()
        unloads += 1
        counter.unlock()
        allModels.forEach { $0.unload() }
    }

    /// Makes `component` resident before its stage runs; in reduce-memory mode every other
    /// component is released first, so two are never resident together.
    public func prepare(_ component: PipelineDescription.ComponentName) throws {
        try exclusive { ticket in try prepareLocked(component, ticket) }
    }

    /// The models of `component` (empty if the pipeline has none).
    public func models(of component: PipelineDescription.ComponentName) -> [Model] {
        components.first { $0.name == component }?.models ?? []
    }

    private func loadLocked(_ ticket: Int) throws {
        if reduceMemory {
            if let first = components.first { try prepareLocked(first.name, ticket) }
        } else {
            for entry in components where !onDemand.contains(entry.name) {
                for model in entry.models {
                    try model.load()
                    try checkpoint(ticket)
                }
            }
        }
    }

    private func prepareLocked(_ component: PipelineDescription.ComponentName, _ ticket: Int) throws {
        if reduceMemory {
            for entry in components where entry.name != component { entry.models.forEach { $0.unloadNow() } }
        }
        for model in models(of: component) {
            try model.load()
            try checkpoint(ticket)
        }
    }

    private var unloadCount: Int {
        counter.lock()
        defer { counter.unlock() }
        return unloads
    }

    /// Throws (after releasing everything) when `unload()` was called since `ticket` was taken.
    private func checkpoint(_ ticket: Int) throws {
        guard unloadCount == ticket else {
            allModels.forEach { $0.unload() }
            throw ModelResidencyError.unloadedWhileLoading
        }
    }

    /// Runs `body` holding the load lock, with the unload count at the time of the call; a call
    /// that waited for the lock while `unload()` ran is skipped.
    private func exclusive<R>(_ body: (_ ticket: Int) throws -> R) throws -> R {
        let ticket = unloadCount
        lock.lock()
        defer { lock.unlock() }
        guard unloadCount == ticket else { throw ModelResidencyError.unloadedWhileLoading }
        let result = try body(ticket)
        try checkpoint(ticket)
        return result
    }
}

/// Errors of `ModelResidency`.
public enum ModelResidencyError: LocalizedError, Equatable {
    /// `unload()` ran while this load waited or was in progress (a memory warning, the app going
    /// to the background); the models were released.
    case unloadedWhileLoading

    public var errorDescription: String? {
        switch self {
        case .unloadedWhileLoading:
            return "the models were released while loading (a memory warning or the app went to the background); "
                + "start again to load them"
        }
    }
}
