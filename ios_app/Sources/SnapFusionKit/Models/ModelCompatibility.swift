import Foundation

/// What a converted folder needs from the device, read from each component's `attention` and
/// `deployment_target` in pipeline.json (docs/contracts.md section 2).
public enum ModelCompatibility {
    /// The compute units a folder was converted for: `attention: "original"` (any component) runs
    /// best on the GPU, so `.cpuAndGPU`; split-einsum attention (and folders that do not say) was
    /// written for the Neural Engine, so `.cpuAndNeuralEngine`. This is Apple's pairing in
    /// ml-stable-diffusion: ORIGINAL for CPU_AND_GPU, SPLIT_EINSUM for CPU_AND_NE.
    public static func recommendedComputeUnits(for description: PipelineDescription) -> ComputeUnits {
        let attentions = components(of: description).compactMap { $0.component.attention?.lowercased() }
        return attentions.contains("original") ? .cpuAndGPU : .cpuAndNeuralEngine
    }

    /// Throws `ModelCompatibilityError.deploymentTargetTooNew` for the first component whose
    /// `deployment_target` is newer than `system` (a model for iOS 17 cannot load on iOS 16).
    /// Targets it cannot read (absent, or a platform other than iOS and macOS) are not refused;
    /// Core ML then reports what it finds when loading.
    public static func check(_ description: PipelineDescription, on system: OperatingSystem = .current) throws {
        for (name, component) in components(of: description) {
            guard let text = component.deploymentTarget, let target = DeploymentTarget(text),
                  let needed = target.minimumVersion(on: system.platform) else { continue }
            if system.version.majorVersion < needed.major
                || (system.version.majorVersion == needed.major && system.version.minorVersion < needed.minor) {
                throw ModelCompatibilityError.deploymentTargetTooNew(component: name.rawValue, target: text,
                                                                      needed: "\(system.platform.rawValue) \(needed.major)"
                                                                          + (needed.minor > 0 ? ".\(needed.minor)" : ""),
                                                                      running: system.description)
            }
        }
    }

    private static func components(of description: PipelineDescription)
        -> [(name: PipelineDescription.ComponentName, component: PipelineDescription.Component)] {
        [(PipelineDescription.ComponentName.textEncoder, description.components.textEncoder),
         (.unet, description.components.unet), (.decoder, description.components.decoder)]
            .compactMap { name, component in component.map { (name, $0) } }
    }
}

/// The platform and version a folder is checked against.
public struct OperatingSystem: Equatable, Sendable, CustomStringConvertible {
    /// The platforms Core ML deployment targets name.
    public enum Platform: String, Sendable {
        case iOS
        case macOS
        /// Linux and every platform a folder's target is not checked on.
        case other
    }

    public var platform: Platform
    public var version: OperatingSystemVersion

    /// A platform at `major.minor`.
    public init(_ platform: Platform, _ major: Int, _ minor: Int = 0) {
        self.platform = platform
        self.version = OperatingSystemVersion(majorVersion: major, minorVersion: minor, patchVersion: 0)
    }

    /// The system this process runs on (iPadOS and Mac Catalyst count as iOS).
    public static var current: OperatingSystem {
        let version = ProcessInfo.processInfo.operatingSystemVersion
        #if os(iOS)
        return OperatingSystem(.iOS, version.majorVersion, version.minorVersion)
        #elseif os(macOS)
        return OperatingSystem(.macOS, version.majorVersion, version.minorVersion)
        #else
        return OperatingSystem(.other, version.majorVersion, version.minorVersion)
        #endif
    }

    /// "iOS 16.4".
    public var description: String { "\(platform.rawValue) \(version.majorVersion).\(version.minorVersion)" }

    public static func == (lhs: OperatingSystem, rhs: OperatingSystem) -> Bool {
        lhs.platform == rhs.platform && lhs.version.majorVersion == rhs.version.majorVersion
            && lhs.version.minorVersion == rhs.version.minorVersion
    }
}

/// A coremltools deployment target as pipeline.json records it: "iOS16", "iOS17", "macOS14"
/// (`ct.target` names; "iOS16.2" style minors accepted).
struct DeploymentTarget: Equatable {
    let platform: OperatingSystem.Platform
    let major: Int
    let minor: Int

    init?(_ text: String) {
        let platform: OperatingSystem.Platform
        let rest: Substring
        if text.hasPrefix("iOS") {
            (platform, rest) = (.iOS, text.dropFirst(3))
        } else if text.hasPrefix("macOS") {
            (platform, rest) = (.macOS, text.dropFirst(5))
        } else {
            return nil
        }
        let parts = rest.split(whereSeparator: { $0 == "." || $0 == "_" })
        guard (1...2).contains(parts.count), let major = Int(parts[0]) else { return nil }
        let minor = parts.count == 2 ? Int(parts[1]) : 0
        guard let minor else { return nil }
        (self.platform, self.major, self.minor) = (platform, major, minor)
    }

    /// The oldest version of `platform` that loads this target. Core ML versions ship in pairs:
    /// iOS 14-18 with macOS 11-15 (iOS n with macOS n - 3), and from 26 on both carry the same
    /// number. nil for `.other`.
    func minimumVersion(on platform: OperatingSystem.Platform) -> (major: Int, minor: Int)? {
        switch (self.platform, platform) {
        case (_, .other), (.other, _): return nil
        case (.iOS, .iOS), (.macOS, .macOS): return (major, minor)
        case (.iOS, .macOS): return major >= 26 ? (major, minor) : (major - 3, minor)
        case (.macOS, .iOS): return major >= 26 ? (major, minor) : (major + 3, minor)
        }
    }
}

/// A converted folder this device cannot run.
public enum ModelCompatibilityError: LocalizedError, Equatable {
    /// `component`'s `deployment_target` (`target`) needs `needed`; the device runs `running`.
    case deploymentTargetTooNew(component: String, target: String, needed: String, running: String)

    public var errorDescription: String? {
        switch self {
        case let .deploymentTargetTooNew(component, target, needed, running):
            return "this model needs \(needed) or later (\(component) was converted with deployment_target \(target)), "
                + "this device runs \(running): update the device, or convert again with an older --target"
        }
    }
}
