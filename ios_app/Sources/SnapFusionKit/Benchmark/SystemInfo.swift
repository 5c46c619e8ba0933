import Foundation
#if canImport(Darwin)
import Darwin
#elseif canImport(Glibc)
import Glibc
#endif

/// Reads the process's peak memory; injectable so the benchmark harness is testable.
public protocol MemoryProbe {
    /// Peak physical memory of the process so far, in bytes (nil if unavailable).
    func peakBytes() -> Int64?
}

/// The real process memory: on Apple platforms `task_info(TASK_VM_INFO)`'s peak physical
/// footprint (`ledger_phys_footprint_peak`, the number the iOS memory limit is checked
/// against), else its current `phys_footprint`; on Linux `VmHWM` of /proc/self/status.
public struct ProcessMemoryProbe: MemoryProbe {
    public init() {}

    public func peakBytes() -> Int64? {
        #if canImport(Darwin)
        var info = task_vm_info_data_t()
        var count = mach_msg_type_number_t(MemoryLayout<task_vm_info_data_t>.size / MemoryLayout<natural_t>.size)
        let result = withUnsafeMutablePointer(to: &info) { pointer in
            pointer.withMemoryRebound(to: integer_t.self, capacity: Int(count)) {
                task_info(mach_task_self_, task_flavor_t(TASK_VM_INFO), $0, &count)
            }
        }
        guard result == KERN_SUCCESS else { return nil }
        return info.ledger_phys_footprint_peak > 0 ? Int64(info.ledger_phys_footprint_peak) : Int64(info.phys_footprint)
        #else
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
        return Self.parseHighWaterMark(status)
        #endif
    }

    /// `VmHWM:   1234 kB` -> 1234 * 1024.
    static func parseHighWaterMark(_ status: String) -> Int64? {
        for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 2, let kilobytes = Int64(fields[1]) else { return nil }
            return kilobytes * 1024
        }
        return nil
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
        return String(cString: buffer)
    }
    #else
    private static func field<T>(_ tuple: T) -> String {
        withUnsafeBytes(of: tuple) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
    }
    #endif
}
