import Foundation

/// One subcommand of `snapfusion-cli`.
protocol Command {
    /// The subcommand's name.
    static var name: String { get }
    /// One line for the overview.
    static var summary: String { get }
    /// Full `--help` text.
    static var help: String { get }
    /// Parses `arguments` (after the subcommand name) and runs.
    static func run(_ arguments: [String]) throws
}

/// Writes one line to standard error.
func printError(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}

/// Resolves a path given on the command line against the working directory.
func fileURL(_ path: String) -> URL {
    URL(fileURLWithPath: (path as NSString).expandingTildeInPath)
}
