import Foundation
import SnapFusionKit

/// `snapfusion-cli generate`: one image from a prompt with Core ML.
enum GenerateCommand: Command {
    static let name = "generate"
    static let summary = "generate an image with Core ML (macOS)"
    static let help = """
    usage: snapfusion-cli generate --resources DIR --prompt TEXT [options]

    Generates one image from a converted folder (snapfusion-coreml convert -o DIR) and writes a PNG.
    Needs Core ML: runs on macOS (and in apps on iOS), not on Linux.

    options:
      --resources DIR        the converted folder (pipeline.json, *.mlpackage or *.mlmodelc, vocab.json, merges.txt)
      --prompt TEXT          what to draw
      --negative-prompt TEXT the unconditional prompt of guidance (default "")
      --steps N              sampling steps (default: pipeline.json sampler.default_steps)
      --guidance W           guidance scale, 1 = none (default: pipeline.json guidance.default_scale)
      --seed S               seed of the initial noise, as torch.manual_seed (default 0)
      --compute-units U      cpuOnly | cpuAndGPU | cpuAndNeuralEngine | all (default cpuAndNeuralEngine)
      --reduce-memory        keep one model in memory at a time
      -o, --output FILE      PNG to write (default image.png)
      -h, --help             show this help
    """

    static func run(_ arguments: [String]) throws {
        let args = try Arguments(arguments, options: ["--resources", "--prompt", "--negative-prompt", "--steps", "--guidance",
                                                      "--seed", "--compute-units", "--output"],
                                 flags: ["--reduce-memory"], aliases: ["-o": "--output"])
        guard args.positionals.isEmpty else { throw CLIError.usage("unexpected argument \(args.positionals[0].debugDescription)") }
        let folder = fileURL(try args.required("--resources"))
        let request = GenerationRequest(prompt: try args.required("--prompt"), negativePrompt: args.string("--negative-prompt") ?? "",
                                        steps: try args.int("--steps"), guidanceScale: try args.double("--guidance"),
                                        seed: try args.uint64("--seed") ?? 0)
        let units = try computeUnits(args)
        let output = fileURL(args.string("--output") ?? "image.png")
        #if canImport(CoreML)
        let backend = try CoreMLBackend(folder: folder, configuration: .init(computeUnits: units, reduceMemory: args.flag("--reduce-memory")))
        let pipeline = try Pipeline(folder: folder, backend: backend)
        try backend.load()
        let result = try pipeline.generate(request) { progress in
            if progress.stage == .unet { printError("step \(progress.step)/\(progress.totalSteps)") }
        }
        try PNGWriter.write(try RGBAImage(image: result.image), to: output)
        let t = result.timings
        print(String(format: "wrote %@ (text encoder %.1f ms, UNet %.1f ms over %ld steps, decoder %.1f ms, end to end %.1f ms)",
                     output.path, t.textEncoderMs, t.unetStepMs.reduce(0, +), t.unetStepMs.count, t.decoderMs, t.endToEndMs))
        #else
        _ = (folder, request, units, output)
        throw CLIError.unavailable("generate needs Core ML, which this platform does not have; run it on macOS, or use `snapfusion-coreml generate` (PyTorch) here")
        #endif
    }
}

/// Parses `--compute-units`.
func computeUnits(_ args: Arguments) throws -> ComputeUnits {
    guard let raw = args.string("--compute-units") else { return .cpuAndNeuralEngine }
    guard let units = ComputeUnits(argument: raw) else {
        throw CLIError.usage("expected --compute-units one of \(ComputeUnits.allCases.map(\.rawValue).joined(separator: ", ")), got \(raw.debugDescription)")
    }
    return units
}
