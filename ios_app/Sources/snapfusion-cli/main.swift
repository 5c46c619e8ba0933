import Foundation
import SnapFusionKit

/// `snapfusion-cli`: generate images, benchmark a converted folder, measure per-block latency
/// tables and tokenize prompts.
let commands: [Command.Type] = [GenerateCommand.self, BenchmarkCommand.self, LatencyTableCommand.self, TokenizeCommand.self]

@MainActor func overview() -> String {
    let width = commands.map { $0.name.count }.max() ?? 0
    let lines = commands.map { "  \($0.name.padding(toLength: width, withPad: " ", startingAt: 0))  \($0.summary)" }
    return """
    usage: snapfusion-cli COMMAND [options]

    commands:
    \(lines.joined(separator: "\n"))

    Run `snapfusion-cli COMMAND --help` for a command's options.
    """
}

var arguments = Array(CommandLine.arguments.dropFirst())
guard let name = arguments.first, !["-h", "--help", "help"].contains(name) else {
    print(overview())
    exit(arguments.isEmpty ? 2 : 0)
}
arguments.removeFirst()
guard let command = commands.first(where: { $0.name == name }) else {
    printError("error: unknown command \(name.debugDescription); expected one of \(commands.map { $0.name }.joined(separator: ", "))")
    exit(2)
}
if arguments.contains("-h") || arguments.contains("--help") {
    print(command.help)
    exit(0)
}
do {
    try command.run(arguments)
} catch let error as CLIError {
    printError("error: \(error.localizedDescription)")
    exit(error.exitCode)
} catch let error as PipelineDescriptionError {
    printError("error: \(error.localizedDescription)")
    exit(2)  // bad input folder
} catch let error as TokenizerError {
    printError("error: \(error.localizedDescription)")
    exit(2)
} catch {
    printError("error: \(error.localizedDescription)")
    exit(1)
}
