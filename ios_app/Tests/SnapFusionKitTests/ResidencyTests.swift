import Foundation
import Testing
@testable import SnapFusionKit

/// A model that records what is resident across a shared ledger.
final class FakeLoadable: LoadableModel, @unchecked Sendable {
    final class Ledger: @unchecked Sendable {
        var resident: Set<String> = []
        var maxResident = 0
        var loads: [String] = []
    }

    let name: String
    let ledger: Ledger

    init(_ name: String, _ ledger: Ledger) {
        self.name = name
        self.ledger = ledger
    }

    var isLoaded: Bool { ledger.resident.contains(name) }

    func load() throws {
        guard !isLoaded else { return }
        ledger.loads.append(name)
        ledger.resident.insert(name)
        ledger.maxResident = max(ledger.maxResident, ledger.resident.count)
    }

    func unload() { ledger.resident.remove(name) }
}

@Suite struct ResidencyTests {
    static func make(reduceMemory: Bool, chunked: Bool = false) -> (ModelResidency<FakeLoadable>, FakeLoadable.Ledger) {
        let ledger = FakeLoadable.Ledger()
        let unet = chunked ? [FakeLoadable("chunk1", ledger), FakeLoadable("chunk2", ledger)] : [FakeLoadable("unet", ledger)]
        let residency = ModelResidency(components: [(.textEncoder, [FakeLoadable("text", ledger)]), (.unet, unet),
                                                    (.decoder, [FakeLoadable("decoder", ledger)])],
                                       reduceMemory: reduceMemory)
        return (residency, ledger)
    }

    @Test func normalModeKeepsEverythingAfterLoadAndPrewarm() throws {
        let (residency, ledger) = Self.make(reduceMemory: false)
        try residency.load()
        try residency.prewarm()
        #expect(ledger.resident == ["text", "unet", "decoder"])
        #expect(ledger.loads == ["text", "unet", "decoder"])  // loaded models are not reloaded
        try residency.prepare(.unet)
        #expect(ledger.resident.count == 3)
    }

    /// The VAE encoder (on demand) stays out of `load()` until the first image-to-image needs
    /// it, then stays; in reduce-memory mode it takes its turn like every component.
    @Test func onDemandEncoderLoadsAtItsFirstUse() throws {
        let ledger = FakeLoadable.Ledger()
        let residency = ModelResidency(components: [(.textEncoder, [FakeLoadable("text", ledger)]), (.encoder, [FakeLoadable("encoder", ledger)]),
                                                    (.unet, [FakeLoadable("unet", ledger)]), (.decoder, [FakeLoadable("decoder", ledger)])],
                                       reduceMemory: false, onDemand: [.encoder])
        try residency.load()
        #expect(ledger.resident == ["text", "unet", "decoder"])
        try residency.prepare(.encoder)
        try residency.load()
        #expect(ledger.resident == ["text", "encoder", "unet", "decoder"] && ledger.loads.filter { $0 == "encoder" }.count == 1)
        let small = FakeLoadable.Ledger()
        let reduced = ModelResidency(components: [(.textEncoder, [FakeLoadable("text", small)]), (.encoder, [FakeLoadable("encoder", small)]),
                                                  (.unet, [FakeLoadable("unet", small)])],
                                     reduceMemory: true, onDemand: [.encoder])
        for stage in [PipelineDescription.ComponentName.textEncoder, .encoder, .unet] { try reduced.prepare(stage) }
        #expect(small.loads == ["text", "encoder", "unet"] && small.maxResident == 1)
    }

    @Test func prewarmAloneLeavesTheModelsReady() throws {
        let (residency, ledger) = Self.make(reduceMemory: false)
        try residency.prewarm()
        #expect(ledger.resident == ["text", "unet", "decoder"])
        let (reduced, small) = Self.make(reduceMemory: true)
        try reduced.prewarm()
        #expect(small.loads == ["text", "unet", "decoder", "text"])
        #expect(small.resident == ["text"])
        #expect(small.maxResident == 1)
    }

    @Test func reduceMemoryHoldsOneComponentAtATime() throws {
        let (residency, ledger) = Self.make(reduceMemory: true, chunked: true)
        try residency.load()
        try residency.prewarm()
        #expect(ledger.resident == ["text"])
        for stage in [PipelineDescription.ComponentName.textEncoder, .unet, .unet, .decoder, .textEncoder] {
            try residency.prepare(stage)
            let loaded = residency.models(of: stage).allSatisfy(\.isLoaded)
            #expect(loaded)
        }
        #expect(ledger.resident == ["text"])
        #expect(ledger.maxResident == 2)  // the two UNet chunks together, never two components
        residency.unload()
        #expect(ledger.resident.isEmpty)
    }
}

/// A model whose load can be held open (a first Neural Engine load takes up to a minute), with a
/// thread-safe record of what is resident.
final class GatedLoadable: LoadableModel, @unchecked Sendable {
    final class Ledger: @unchecked Sendable {
        private let lock = NSLock()
        private var residentNames: Set<String> = []
        private var loadNames: [String] = []
        var resident: Set<String> { lock.lock(); defer { lock.unlock() }; return residentNames }
        var loads: [String] { lock.lock(); defer { lock.unlock() }; return loadNames }
        func loaded(_ name: String) { lock.lock(); residentNames.insert(name); loadNames.append(name); lock.unlock() }
        func released(_ name: String) { lock.lock(); residentNames.remove(name); lock.unlock() }
    }

    let name: String
    let ledger: Ledger
    /// When set, `load()` signals `entered` and waits for `gate`.
    let gate: DispatchSemaphore?
    let entered = DispatchSemaphore(value: 0)

    init(_ name: String, _ ledger: Ledger, gated: Bool = false) {
        self.name = name
        self.ledger = ledger
        self.gate = gated ? DispatchSemaphore(value: 0) : nil
    }

    var isLoaded: Bool { ledger.resident.contains(name) }

    func load() throws {
        guard !isLoaded else { return }
        if let gate {
            entered.signal()
            gate.wait()
        }
        ledger.loaded(name)
    }

    func unload() { ledger.released(name) }
}

@Suite struct UnloadDuringLoadTests {
    /// Runs `body` on another thread; true when it returned within `seconds`.
    static func returns(within seconds: Double, _ body: @escaping @Sendable () -> Void) -> Bool {
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            body()
            done.signal()
        }
        return done.wait(timeout: .now() + seconds) == .success
    }

    /// The app's memory-warning and background handlers unload on a load that takes a minute:
    /// `unload()` returns at once, the load in progress releases what it loaded and throws, and
    /// a load that was waiting behind it is skipped.
    @Test func unloadNeverWaitsForALoadInProgress() throws {
        let ledger = GatedLoadable.Ledger()
        let unet = GatedLoadable("unet", ledger, gated: true)
        let residency = ModelResidency(components: [(.textEncoder, [GatedLoadable("text", ledger)]), (.unet, [unet]),
                                                    (.decoder, [GatedLoadable("decoder", ledger)])],
                                       reduceMemory: false)
        let results = Results()
        let first = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            results.record(0, Result { try residency.load() })
            first.signal()
        }
        #expect(unet.entered.wait(timeout: .now() + 5) == .success)  // the UNet load is in progress, the lock held
        let second = DispatchSemaphore(value: 0)
        Thread.detachNewThread {  // a pending load, queued behind the first
            results.record(1, Result { try residency.prepare(.decoder) })
            second.signal()
        }
        Thread.sleep(forTimeInterval: 0.05)

        #expect(Self.returns(within: 2) { residency.unload() }, "unload() waited for the load in progress")
        #expect(!ledger.resident.contains("text"))

        unet.gate?.signal()  // the UNet load ends
        #expect(first.wait(timeout: .now() + 5) == .success && second.wait(timeout: .now() + 5) == .success)
        #expect(results.error(0) == .unloadedWhileLoading)
        #expect(results.error(1) == .unloadedWhileLoading)
        #expect(ledger.resident.isEmpty)  // the UNet that finished loading was released at once
        #expect(ledger.loads == ["text", "unet"])  // the decoder was never loaded: the pending load was skipped

        // A load after the unload proceeds (the UNet's load is let through at once this time).
        unet.gate?.signal()
        try residency.load()
        #expect(ledger.resident == ["text", "unet", "decoder"])
    }

    /// The same in reduce-memory mode, through `prewarm()`.
    @Test func unloadAbandonsAPrewarm() throws {
        let ledger = GatedLoadable.Ledger()
        let text = GatedLoadable("text", ledger, gated: true)
        let residency = ModelResidency(components: [(.textEncoder, [text]), (.unet, [GatedLoadable("unet", ledger)]),
                                                    (.decoder, [GatedLoadable("decoder", ledger)])],
                                       reduceMemory: true)
        let results = Results()
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            results.record(0, Result { try residency.prewarm() })
            done.signal()
        }
        #expect(text.entered.wait(timeout: .now() + 5) == .success)
        #expect(Self.returns(within: 2) { residency.unload() })
        text.gate?.signal()
        #expect(done.wait(timeout: .now() + 5) == .success)
        #expect(results.error(0) == .unloadedWhileLoading)
        #expect(ledger.resident.isEmpty && ledger.loads == ["text"])
    }

    /// Models whose `unload()` only queues the release: reduce memory must still never hold two
    /// components, so stage switches and prewarm use `unloadNow()`; `unload()` stays non-blocking.
    @Test func stageSwitchesWaitForTheRelease() throws {
        final class QueuedRelease: LoadableModel, @unchecked Sendable {
            let name: String
            let ledger: GatedLoadable.Ledger
            var pending = false  // a release queued by unload(), not done yet
            init(_ name: String, _ ledger: GatedLoadable.Ledger) { (self.name, self.ledger) = (name, ledger) }
            var isLoaded: Bool { ledger.resident.contains(name) }
            func load() throws {
                pending = false
                if !isLoaded { ledger.loaded(name) }
            }
            func unload() { pending = true }
            func unloadNow() {
                pending = false
                ledger.released(name)
            }
        }
        let ledger = GatedLoadable.Ledger()
        let models = ["text", "unet", "decoder"].map { QueuedRelease($0, ledger) }
        let residency = ModelResidency(components: [(.textEncoder, [models[0]]), (.unet, [models[1]]), (.decoder, [models[2]])],
                                       reduceMemory: true)
        try residency.prewarm()
        #expect(ledger.resident == ["text"])
        for stage in [PipelineDescription.ComponentName.unet, .decoder, .textEncoder, .unet] {
            try residency.prepare(stage)
            #expect(ledger.resident.count == 1)
        }
        residency.unload()
        #expect(models.allSatisfy { $0.pending || !$0.isLoaded })  // queued, not waited for
    }

    @Test func errorIsOneClearLine() {
        let message = ModelResidencyError.unloadedWhileLoading.localizedDescription
        #expect(message.contains("released while loading") && !message.contains("\n"))
    }

    final class Results: @unchecked Sendable {
        private let lock = NSLock()
        private var values: [Int: Result<Void, any Error>] = [:]
        func record(_ index: Int, _ result: Result<Void, any Error>) { lock.lock(); values[index] = result; lock.unlock() }
        func error(_ index: Int) -> ModelResidencyError? {
            lock.lock()
            defer { lock.unlock() }
            guard case let .failure(error)? = values[index] else { return nil }
            return error as? ModelResidencyError
        }
    }
}
