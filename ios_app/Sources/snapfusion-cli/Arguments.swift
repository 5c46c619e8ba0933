import Foundation

/// A tiny argument parser: `--name value`, `--flag`, `-o value` and positionals, with one clear
/// error line for anything unexpected.
struct Arguments {
    private(set) var positionals: [String] = []
    private var values: [String: String] = [:]
    private var flags: Set<String> = []

    /// Parses `arguments` given the option names that take a value and the boolean flags.
    /// Short aliases map to their long names (e.g. "-o" -> "--output").
    init(_ arguments: [String], options: Set<String>, flags knownFlags: Set<String>, aliases: [String: String] = [:]) throws {
        var iterator = arguments.makeIterator()
        var onlyPositionals = false
        while let raw = iterator.next() {
            if onlyPositionals || !raw.hasPrefix("-") || raw == "-" {
                positionals.append(raw)
                continue
            }
            if raw == "--" {
                onlyPositionals = true
                continue
            }
            var name = raw
            var inline: String?
            if let eq = raw.firstIndex(of: "="), raw.hasPrefix("--") {
                name = String(raw[..<eq])
                inline = String(raw[raw.index(after: eq)...])
            }
            name = aliases[name] ?? name
            if knownFlags.contains(name), inline == nil {
                flags.insert(name)
            } else if options.contains(name) {
                guard let value = inline ?? iterator.next() else { throw CLIError.usage("option \(name) needs a value") }
                values[name] = value
            } else {
                throw CLIError.usage("unknown option \(raw)")
            }
        }
    }

    func flag(_ name: String) -> Bool { flags.contains(name) }

    func string(_ name: String) -> String? { values[name] }

    func required(_ name: String) throws -> String {
        guard let value = values[name] else { throw CLIError.usage("missing required option \(name)") }
        return value
    }

    func int(_ name: String) throws -> Int? {
        guard let raw = values[name] else { return nil }
        guard let value = Int(raw) else { throw CLIError.usage("expected an integer for \(name), got \(raw.debugDescription)") }
        return value
    }

    func uint64(_ name: String) throws -> UInt64? {
        guard let raw = values[name] else { return nil }
        guard let value = UInt64(raw) else { throw CLIError.usage("expected a non-negative integer for \(name), got \(raw.debugDescription)") }
        return value
    }

    func double(_ name: String) throws -> Double? {
        guard let raw = values[name] else { return nil }
        guard let value = Double(raw), value.isFinite else { throw CLIError.usage("expected a number for \(name), got \(raw.debugDescription)") }
        return value
    }
}

/// Errors the command line reports as one line before exiting non-zero.
enum CLIError: LocalizedError {
    case usage(String)
    case unavailable(String)

    var errorDescription: String? {
        switch self {
        case let .usage(message): return message
        case let .unavailable(message): return message
        }
    }

    /// 2 for bad usage (like the Python CLI), 1 for everything else.
    var exitCode: Int32 {
        switch self {
        case .usage: return 2
        case .unavailable: return 1
        }
    }
}
