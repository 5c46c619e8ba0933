// Type-checking stub of the Darwin (libSystem) API that SnapFusionKit and snapfusion-cli call
// under `#if canImport(Darwin)`, for Linux. Declarations only; nothing here runs. Each one is
// copied from the Swift interface Xcode shows for the C header cited above it (iOS 16 / macOS 13
// SDKs), so a misspelled call or a wrong type fails `ios_app/scripts/typecheck-apple.sh`.
//
// `mach_task_self_` is declared as the SDKs before Xcode 16.3 declare it: a plain mutable global
// without `__swift_nonisolated_unsafe`. Swift 6 rejects any read of it as not concurrency-safe
// there (apple/swift-system#369), and so does this check; the code reads `task_self_trap()`.
import Foundation

// <mach/i386/vm_types.h>, <mach/arm/vm_types.h>: natural_t is `unsigned int`, integer_t `int`
public typealias natural_t = UInt32
public typealias integer_t = Int32
// <mach/port.h>, <sys/_types/_mach_port_t.h>
public typealias mach_port_name_t = natural_t
public typealias mach_port_t = UInt32
// <mach/message.h>
public typealias mach_msg_type_number_t = natural_t
// <mach/kern_return.h>
public typealias kern_return_t = Int32
public var KERN_SUCCESS: Int32 { 0 }
// <mach/mach_types.h>
public typealias task_name_t = mach_port_t
// <mach/task_info.h>
public typealias task_flavor_t = natural_t
public typealias task_info_t = UnsafeMutablePointer<integer_t>
public var TASK_VM_INFO: Int32 { 22 }

// <mach/task_info.h>: struct task_vm_info (the fields read here; the real struct has more)
public struct task_vm_info {
    public var virtual_size: UInt64
    public var resident_size: UInt64
    public var phys_footprint: UInt64
    public var ledger_phys_footprint_peak: Int64
    public init() { (virtual_size, resident_size, phys_footprint, ledger_phys_footprint_peak) = (0, 0, 0, 0) }
}
public typealias task_vm_info_data_t = task_vm_info

// <mach/task.h> (MIG): kern_return_t task_info(task_name_t, task_flavor_t, task_info_t, mach_msg_type_number_t *)
public func task_info(_ target_task: task_name_t, _ flavor: task_flavor_t, _ task_info_out: task_info_t!,
                      _ task_info_outCnt: UnsafeMutablePointer<mach_msg_type_number_t>!) -> kern_return_t { 0 }

// <mach/mach_init.h>: extern mach_port_t mach_task_self_; (no concurrency annotation before Xcode 16.3)
public var mach_task_self_: mach_port_t = 0

// <mach/mach_traps.h>: extern mach_port_name_t task_self_trap(void);
public func task_self_trap() -> mach_port_name_t { 0 }

// <sys/sysctl.h>: int sysctlbyname(const char *, void *, size_t *, void *, size_t);
public func sysctlbyname(_ name: UnsafePointer<CChar>!, _ oldp: UnsafeMutableRawPointer!, _ oldlenp: UnsafeMutablePointer<Int>!,
                         _ newp: UnsafeMutableRawPointer!, _ newlen: Int) -> Int32 { 0 }

// <unistd.h>: ssize_t read(int, void *, size_t);
public func read(_ fd: Int32, _ buf: UnsafeMutableRawPointer!, _ nbyte: Int) -> Int { 0 }

// https://developer.apple.com/documentation/foundation/processinfo/thermalstate-swift.enum (iOS 11, macOS 10.10.3)
// and https://developer.apple.com/documentation/foundation/processinfo/thermalstate-swift.property.
// Foundation declares these on Apple platforms; Linux's Foundation lacks them, so this stub
// (the module every Apple-only branch imports) carries them.
extension ProcessInfo {
    public enum ThermalState: Int, @unchecked Sendable {
        case nominal = 0, fair = 1, serious = 2, critical = 3
    }

    public var thermalState: ProcessInfo.ThermalState { .nominal }
}
