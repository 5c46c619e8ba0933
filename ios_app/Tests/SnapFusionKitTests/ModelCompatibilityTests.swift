import Foundation
import Testing
@testable import SnapFusionKit

@Suite struct ModelCompatibilityTests {
    /// tests/golden/pipelines.json's valid folder with every component's `attention` and
    /// `deployment_target` replaced.
    static func description(attention: [String?], target: [String?]) throws -> PipelineDescription {
        var description = try PipelineDescription.decode(try ModelFolder.json(named: "valid"))
        description.components.textEncoder?.attention = attention[0]
        description.components.unet?.attention = attention[1]
        description.components.decoder?.attention = attention[2]
        description.components.textEncoder?.deploymentTarget = target[0]
        description.components.unet?.deploymentTarget = target[1]
        description.components.decoder?.deploymentTarget = target[2]
        return description
    }

    /// Apple's pairing: original attention on the GPU, split einsum on the Neural Engine.
    @Test(arguments: [
        (["split_einsum", "split_einsum", "split_einsum"] as [String?], ComputeUnits.cpuAndNeuralEngine),
        (["split_einsum_v2", "split_einsum_v2", "split_einsum_v2"], .cpuAndNeuralEngine),
        (["original", "original", "original"], .cpuAndGPU),
        (["split_einsum", "original", "split_einsum"], .cpuAndGPU),
        ([nil, nil, nil], .cpuAndNeuralEngine),
    ])
    func computeUnitsFollowAttention(attention: [String?], expected: ComputeUnits) throws {
        let description = try Self.description(attention: attention, target: ["iOS16", "iOS16", "iOS16"])
        #expect(ModelCompatibility.recommendedComputeUnits(for: description) == expected)
    }

    @Test(arguments: [
        // target, system, refused
        ("iOS16", OperatingSystem(.iOS, 16, 0), false),
        ("iOS17", OperatingSystem(.iOS, 16, 4), true),
        ("iOS17", OperatingSystem(.iOS, 17, 0), false),
        ("iOS16.2", OperatingSystem(.iOS, 16, 1), true),
        ("iOS18", OperatingSystem(.macOS, 14, 5), true),   // iOS 18 pairs with macOS 15
        ("iOS18", OperatingSystem(.macOS, 15, 0), false),
        ("macOS14", OperatingSystem(.iOS, 16, 0), true),   // macOS 14 pairs with iOS 17
        ("iOS26", OperatingSystem(.macOS, 15, 6), true),   // from 26 on, one number for both
        ("iOS17", OperatingSystem(.other, 6, 1), false),   // not checked off Apple platforms
        ("spec v9", OperatingSystem(.iOS, 16, 0), false),  // unreadable: Core ML decides
    ])
    func deploymentTargetIsChecked(target: String, system: OperatingSystem, refused: Bool) throws {
        let description = try Self.description(attention: [nil, nil, nil], target: ["iOS16", target, "iOS16"])
        if refused {
            #expect(throws: ModelCompatibilityError.self) { try ModelCompatibility.check(description, on: system) }
        } else {
            try ModelCompatibility.check(description, on: system)
        }
    }

    @Test func refusalIsOneClearLine() throws {
        let description = try Self.description(attention: [nil, nil, nil], target: ["iOS16", "iOS17", "iOS16"])
        #expect(throws: ModelCompatibilityError.deploymentTargetTooNew(component: "unet", target: "iOS17", needed: "iOS 17",
                                                                      running: "iOS 16.4")) {
            try ModelCompatibility.check(description, on: OperatingSystem(.iOS, 16, 4))
        }
        let message = ModelCompatibilityError.deploymentTargetTooNew(component: "unet", target: "iOS17", needed: "iOS 17",
                                                                     running: "iOS 16.4").localizedDescription
        #expect(message == "this model needs iOS 17 or later (unet was converted with deployment_target iOS17), "
                + "this device runs iOS 16.4: update the device, or convert again with an older --target")
    }

    @Test func currentSystemIsNamed() {
        #if os(Linux)
        #expect(OperatingSystem.current.platform == .other)
        #endif
        #expect(OperatingSystem(.iOS, 17, 2).description == "iOS 17.2")
    }
}
