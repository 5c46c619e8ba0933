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
