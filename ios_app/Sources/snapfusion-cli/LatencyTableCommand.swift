import Foundation
import SnapFusionKit

/// `snapfusion-cli latency-table`: per-block latencies of docs/contracts.md section 4.
enum LatencyTableCommand: Command {
    static let name = "latency-table"
    static let summary = "time every single-block package of export-blocks with Core ML (macOS), write JSON"
    static let help = """
    usage: snapfusion-cli latency-table --blocks DIR [options]

    Times every block package of `snapfusion-coreml export-blocks MODEL -o DIR` (manifest.json)
    and writes the latency table read by `snapfusion-coreml evolve` and the cost model. Needs Core ML.

    options:
      --blocks DIR           the exported blocks folder (manifest.json + one package per block)
      --warmup N             unmeasured predictions per block (default 3)
      --runs N               measured predictions per block (default 20)
      --compute-units U      cpuOnly | cpuAndGPU | cpuAndNeuralEngine | all (default cpuAndNeuralEngine)
      -o, --output FILE      JSON to write (default latency_table.json)
      -h, --help             show this help
    """

    static func run(_ arguments: [String]) throws {
        let args = try Arguments(arguments, options: ["--blocks", "--warmup", "--runs", "--compute-units", "--output"],
                                 flags: [], aliases: ["-o": "--output"])
        guard args.positionals.isEmpty else { throw CLIError.usage("unexpected argument \(args.positionals[0].debugDescription)") }
        let folder = fileURL(try args.required("--blocks"))
        let units = try computeUnits(args) ?? .cpuAndNeuralEngine
        let warmup = try args.int("--warmup") ?? 3
        let runs = try args.int("--runs") ?? 20
        let output = fileURL(args.string("--output") ?? "latency_table.json")
        #if canImport(CoreML)
        let runner = LatencyTableRunner(backend: CoreMLBlockBackend(computeUnits: units), computeUnits: units,
                                        warmup: warmup, runs: runs)
        let table = try runner.run(folder: folder, log: { printError($0) })
        try ReportCoding.write(table, to: output)
        print("wrote \(output.path): \(table.entries.count) blocks, " + String(format: "%.2f ms in total (p50)", table.entries.map(\.p50Ms).reduce(0, +)))
        #else
        // Check the blocks manifest here too, so a bad folder is reported before the platform.
        _ = try BlocksManifest.load(from: folder)
        _ = (warmup, runs, output)
        throw CLIError.unavailable("latency-table needs Core ML, which this platform does not have; run it on macOS")
        #endif
    }
}
