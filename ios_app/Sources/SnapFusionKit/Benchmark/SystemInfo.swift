import Foundation
#if canImport(Darwin)
import Darwin
#elseif canImport(Glibc)
import Glibc
#endif

/// Reads the process's memory; injectable so the benchmark harness is testable.
public protocol MemoryProbe: Sendable {
    /// Physical memory of the process now, in bytes (nil if unavailable). The benchmark samples
    /// it during each run; the largest sample is that run's peak.
    func currentBytes() -> Int64?
    /// Peak physical memory of the process since it started, in bytes (nil if unavailable).
    func peakBytes() -> Int64?
}

#if canImport(Darwin)
/// This task's port, read once. `mach_task_self_` is a mutable C global that SDKs before
/// Xcode 16.3 do not mark as concurrency-safe, so Swift 6 rejects every read of it there;
/// `task_self_trap()` returns the same port (libSystem initialises `mach_task_self_` from it),
/// and keeping one copy in an immutable global takes a single send right for the process's life.
private let currentTask: mach_port_t = task_self_trap()
#endif

/// The real process memory: on Apple platforms `task_info(TASK_VM_INFO)`'s physical footprint
/// (`phys_footprint`, the number the iOS memory limit is checked against; peak:
/// `ledger_phys_footprint_peak`); on Linux `VmRSS` and `VmHWM` of /proc/self/status.
public struct ProcessMemoryProbe: MemoryProbe {
    public init() {}

    public func currentBytes() -> Int64? {
        #if canImport(Darwin)
        return Self.vmInfo().map { Int64($0.phys_footprint) }
        #else
        return Self.statusField("VmRSS:")
        #endif
    }

    public func peakBytes() -> Int64? {
        #if canImport(Darwin)
        guard let info = Self.vmInfo() else { return nil }
        return info.ledger_phys_footprint_peak > 0 ? Int64(info.ledger_phys_footprint_peak) : Int64(info.phys_footprint)
        #else
        return Self.statusField("VmHWM:")
        #endif
    }

    #if canImport(Darwin)
    private static func vmInfo() -> task_vm_info_data_t? {
        var info = task_vm_info_data_t()
        var count = mach_msg_type_number_t(MemoryLayout<task_vm_info_data_t>.size / MemoryLayout<natural_t>.size)
        let result = withUnsafeMutablePointer(to: &info) { pointer in
            pointer.withMemoryRebound(to: integer_t.self, capacity: Int(count)) {
                task_info(currentTask, task_flavor_t(TASK_VM_INFO), $0, &count)
            }
        }
        return result == KERN_SUCCESS ? info : nil
    }
    #else
    private static func statusField(_ field: String) -> Int64? {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
        return parseKilobytes(status, field: field)
    }
    #endif

    /// `VmHWM:   1234 kB` -> 1234 * 1024.
    static func parseHighWaterMark(_ status: String) -> Int64? { parseKilobytes(status, field: "VmHWM:") }

    /// `<field>   1234 kB` in /proc/self/status -> 1234 * 1024.
    static func parseKilobytes(_ status: String, field: String) -> Int64? {
        for line in status.split(separator: "\n") where line.hasPrefix(field) {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 2, let kilobytes = Int64(fields[1].trimmingCharacters(in: .whitespaces)) else { return nil }
            return kilobytes * 1024
        }
        return nil
    }
}

/// How hot the device is, as `ProcessInfo.ThermalState` reports it on Apple platforms; the
/// system throttles the CPU, GPU and Neural Engine from `serious` on, so timings taken then are
/// not comparable with timings of a cool device.
public enum ThermalState: String, Codable, Sendable, CaseIterable, Comparable {
    case nominal
    case fair
    case serious
    case critical
    /// No thermal information on this platform (Linux).
    case unavailable

    private var rank: Int {
        switch self {
        case .unavailable: return -1
        case .nominal: return 0
        case .fair: return 1
        case .serious: return 2
        case .critical: return 3
        }
    }

    public static func < (lhs: ThermalState, rhs: ThermalState) -> Bool { lhs.rank < rhs.rank }
}

/// Reads the thermal state; injectable so the cool-down logic is testable.
public protocol ThermalProbe: Sendable {
    /// The device's thermal state now.
    func state() -> ThermalState
}

/// `ProcessInfo.processInfo.thermalState` on Apple platforms, `.unavailable` elsewhere.
public struct SystemThermalProbe: ThermalProbe {
    public init() {}

    public func state() -> ThermalState {
        #if canImport(Darwin)
        switch ProcessInfo.processInfo.thermalState {
        case .nominal: return .nominal
        case .fair: return .fair
        case .serious: return .serious
        case .critical: return .critical
        @unknown default: return .critical
        }
        #else
        return .unavailable
        #endif
    }
}

/// Device model and operating system, as written into benchmark and latency-table JSON.
public enum SystemInfo {
    /// "iPhone15,2" on iOS (`hw.machine`), "Mac14,2" on macOS (`hw.model`), e.g. "Linux x86_64" elsewhere.
    public static var deviceModel: String {
        #if canImport(Darwin)
        #if os(macOS)
        return sysctlString("hw.model") ?? "Mac"
        #else
        return sysctlString("hw.machine") ?? "unknown"
        #endif
        #else
        var name = utsname()
        guard uname(&name) == 0 else { return "unknown" }
        return "\(field(name.sysname)) \(field(name.machine))"
        #endif
    }

    /// "iOS 17.4", "macOS 14.2.1", or e.g. "Linux 6.1.0" elsewhere.
    public static var operatingSystem: String {
        let version = ProcessInfo.processInfo.operatingSystemVersion
        var text = "\(version.majorVersion).\(version.minorVersion)"
        if version.patchVersion > 0 { text += ".\(version.patchVersion)" }
        #if os(iOS)
        return "iOS \(text)"
        #elseif os(macOS)
        return "macOS \(text)"
        #elseif os(visionOS)
        return "visionOS \(text)"
        #elseif os(Linux)
        var name = utsname()
        guard uname(&name) == 0 else { return "Linux \(text)" }
        return "\(field(name.sysname)) \(field(name.release))"
        #else
        return text
        #endif
    }

    /// "debug" when SnapFusionKit was compiled without optimisation (`DEBUG` defined: Xcode's
    /// and SwiftPM's Debug configuration), else "release". Debug builds convert tensors about 20x
    /// slower, so their benchmark numbers say little about the device.
    public static var buildConfiguration: String {
        #if DEBUG
        return "debug"
        #else
        return "release"
        #endif
    }

    /// The current time as ISO 8601 in UTC ("2026-11-25T12:00:00Z").
    public static func timestamp(_ date: Date = Date()) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        formatter.timeZone = TimeZone(identifier: "UTC")
        return formatter.string(from: date)
    }

    #if canImport(Darwin)
    private static func sysctlString(_ name: String) -> String? {
        var size = 0
        guard sysctlbyname(name, nil, &size, nil, 0) == 0, size > 0 else { return nil }
        var buffer = [CChar](repeating: 0, count: size)
        guard sysctlbyname(name, &buffer, &size, nil, 0) == 0 else { return nil }
        // The value ends with a NUL; decoding the bytes before it avoids `String(cString:)` on an
        // array, which Swift 6 deprecates.
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
    #endif

    /// A NUL-terminated `utsname` field as a String.
    private static func field<T>(_ tuple: T) -> String {
        withUnsafeBytes(of: tuple) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
    }
}
