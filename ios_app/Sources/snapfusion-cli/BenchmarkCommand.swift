import Foundation
import SnapFusionKit

/// `snapfusion-cli benchmark`: the benchmark JSON of docs/contracts.md section 6.
enum BenchmarkCommand: Command {
    static let name = "benchmark"
    static let summary = "time loading and every stage of generation with Core ML (macOS), write JSON"
    static let help = """
    usage: snapfusion-cli benchmark --resources DIR [options]

    Measures cold load (after unloading; in a fresh process the first load, compiling when the
    cache is empty) and warm load, then generates `--warmup` unmeasured and `--runs` measured
    images, recording per run the text encoder, every UNet step, the decoder, end to end
    (tokenization to image, loading excluded), the run's peak memory, the thermal state and the
    compute units each model ran on. Writes the benchmark JSON read by `snapfusion-coreml report`.
    Build with `-c release`: a debug build converts tensors about 20x slower. Needs Core ML.

    options:
      --resources DIR        the converted folder
      --prompt TEXT          (default "a photo of an astronaut riding a horse on mars")
      --steps N              (default: pipeline.json)
      --guidance W           (default: pipeline.json)
      --seed S               (default 0)
      --warmup N             unmeasured generations first (default 1)
      --runs N               measured generations (default 5)
      --compute-units U      cpuOnly | cpuAndGPU | cpuAndNeuralEngine | all (default: the folder's attention,
                             original -> cpuAndGPU, else cpuAndNeuralEngine)
      --reduce-memory        keep one model in memory at a time (stage times then include loads)
      --cool-down SECONDS    before each measured run, pause SECONDS, then wait (up to 5 minutes) until
                             the thermal state is nominal or fair (default: no cool-down)
      -o, --output FILE      JSON to write (default benchmark.json)
      -h, --help             show this help
    """

    static func run(_ arguments: [String]) throws {
        let args = try Arguments(arguments, options: ["--resources", "--prompt", "--steps", "--guidance", "--seed", "--warmup",
                                                      "--runs", "--compute-units", "--cool-down", "--output"],
                                 flags: ["--reduce-memory"], aliases: ["-o": "--output"])
        guard args.positionals.isEmpty else { throw CLIError.usage("unexpected argument \(args.positionals[0].debugDescription)") }
        let folder = fileURL(try args.required("--resources"))
        let units = try computeUnits(args)
        var options = BenchmarkOptions(steps: try args.int("--steps"), guidanceScale: try args.double("--guidance"),
                                       seed: try args.uint64("--seed") ?? 0, warmup: try args.int("--warmup") ?? 1,
                                       runs: try args.int("--runs") ?? 5, reduceMemory: args.flag("--reduce-memory"))
        if let prompt = args.string("--prompt") { options.prompt = prompt }
        if let pause = try args.double("--cool-down") {
            guard pause >= 0 else { throw CLIError.usage("expected --cool-down >= 0 seconds, got \(pause)") }
            options.coolDown = BenchmarkOptions.CoolDown(pauseSeconds: pause)
        }
        let output = fileURL(args.string("--output") ?? "benchmark.json")
        #if canImport(CoreML)
        let opened = try ConvertedFolder(url: folder)
        // Core ML or Core AI, whichever the folder's files are for (Core AI places work itself: .all)
        let backend = try opened.makeBackend(coreML: .init(computeUnits: units, reduceMemory: options.reduceMemory))
        options.runtime = try opened.format()
        options.computeUnits = (backend as? CoreMLBackend)?.computeUnits ?? .all
        let runner = BenchmarkRunner(pipeline: try Pipeline(folder: opened, backend: backend), options: options)
        let report = try runner.run(log: { printError($0) })
        try ReportCoding.write(report, to: output)
        print(String(format: "wrote %@: end to end p50 %.1f ms, UNet step p50 %.1f ms, cold load %.0f ms",
                     output.path, report.summary.endToEndMs.p50, report.summary.unetStepMs.p50, report.load.coldMs))
        #else
        _ = (folder, options, output, units)
        throw CLIError.unavailable("benchmark needs Core ML, which this platform does not have; run it on macOS or with the sample app on iOS")
        #endif
    }
}
