import Foundation

/// A model that can be brought into memory and released: one Core ML model in the Core ML
/// backend, a fake in the tests.
public protocol LoadableModel: AnyObject, Sendable {
    /// Whether the model is in memory now.
    var isLoaded: Bool { get }
    /// Brings the model into memory (no-op when loaded).
    func load() throws
    /// Releases the model's memory (no-op when not loaded).
    func unload()
}

/// Which models of a pipeline are in memory, in one of two modes.
///
/// Memory held (M = a model's loaded size):
/// - normal: after `load()` or `prewarm()`, text encoder + UNet (all chunks) + decoder stay
///   resident: M(text encoder) + M(UNet) + M(decoder); no load during generation.
/// - reduce memory: at most one component at a time, max(M(text encoder), M(UNet), M(decoder)).
///   `load()` makes the first stage's model (the text encoder) resident; each stage then releases
///   the previous component before loading its own (`prepare(_:)`), so every generation loads
///   the UNet and decoder once.
///
/// `prewarm()` loads and releases every model once, one at a time (the device specializes and
/// caches each program on first load, Apple's prewarm pattern for the Neural Engine), and then
/// leaves the models as `load()` does: ready to generate, never empty.
public final class ModelResidency<Model: LoadableModel>: @unchecked Sendable {
    /// Keep one component in memory at a time.
    public let reduceMemory: Bool
    /// The models of each component, in stage order (text encoder, UNet chunks, decoder).
    public let components: [(name: PipelineDescription.ComponentName, models: [Model])]
    private let lock = NSRecursiveLock()

    /// Residency over `components` (stage order).
    public init(components: [(name: PipelineDescription.ComponentName, models: [Model])], reduceMemory: Bool) {
        self.components = components
        self.reduceMemory = reduceMemory
    }

    /// Every model, in stage order.
    public var allModels: [Model] { components.flatMap(\.models) }

    /// Normal mode: loads every model. Reduce memory: loads the first component only.
    public func load() throws {
        try locked {
            if reduceMemory {
                if let first = components.first { try prepareLocked(first.name) }
            } else {
                for model in allModels { try model.load() }
            }
        }
    }

    /// Loads and releases each model that is not in memory, one at a time, then `load()`.
    public func prewarm() throws {
        try locked {
            for model in allModels where !model.isLoaded {
                try model.load()
                model.unload()
            }
            try load()
        }
    }

    /// Releases every model.
    public func unload() {
        locked { allModels.forEach { $0.unload() } }
    }

    /// Makes `component` resident before its stage runs; in reduce-memory mode every other
    /// component is released first, so two are never resident together.
    public func prepare(_ component: PipelineDescription.ComponentName) throws {
        try locked { try prepareLocked(component) }
    }

    /// The models of `component` (empty if the pipeline has none).
    public func models(of component: PipelineDescription.ComponentName) -> [Model] {
        components.first { $0.name == component }?.models ?? []
    }

    private func prepareLocked(_ component: PipelineDescription.ComponentName) throws {
        if reduceMemory {
            for entry in components where entry.name != component { entry.models.forEach { $0.unload() } }
        }
        for model in models(of: component) { try model.load() }
    }

    private func locked<R>(_ body: () throws -> R) rethrows -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }
}
