import Foundation
import SnapFusionKit

/// `snapfusion-cli generate`: one image from a prompt, with Core ML or the Python interpreter.
enum GenerateCommand: Command {
    static let name = "generate"
    static let summary = "generate an image with Core ML (macOS) or the Python Core ML interpreter (anywhere)"
    static let help = """
    usage: snapfusion-cli generate --resources DIR --prompt TEXT [options]

    Generates one image from a converted folder (snapfusion-coreml convert -o DIR) and writes a PNG.
    --backend coreml needs Core ML (macOS; apps on iOS). --backend interpreter runs the packages
    through the project's Python Core ML interpreter (`snapfusion-coreml interpret DIR`) on any
    machine with the Python package, Linux included; everything else (tokenizer, noise, sampler,
    guidance, decoding, PNG) is this Swift pipeline. The sampler is the one pipeline.json names
    (ddim, pndm, dpmsolver++, euler, euler_ancestral, lcm or tcd).

    options:
      --resources DIR        the converted folder (pipeline.json, *.mlpackage or *.mlmodelc, vocab.json, merges.txt)
      --prompt TEXT          what to draw
      --negative-prompt TEXT the unconditional prompt of classifier-free guidance (default ""; unused
                             when guidance does not run: W <= 1 or a guidance-embedding UNet)
      --steps N              sampling steps (default: pipeline.json sampler.default_steps; folders of
                             format_version 2 take only that count)
      --guidance W           guidance scale, 1 = none (default: pipeline.json guidance.default_scale)
      --seed S               seed of the initial noise, as torch.manual_seed (default 0)
      --backend B            coreml | interpreter (default coreml)
      --python-command CMD   interpreter: the command that runs the Python CLI (default snapfusion-coreml;
                             e.g. ".venv/bin/python -m snapfusion_coreml")
      --precision P          interpreter: fp16 (as on device, default) | fp32
      --compute-units U      coreml: cpuOnly | cpuAndGPU | cpuAndNeuralEngine | all (default: what the folder's
                             attention was converted for: original -> cpuAndGPU, else cpuAndNeuralEngine)
      --reduce-memory        coreml: keep one model in memory at a time
      --retry-on-gpu         coreml: rerun a component on cpuAndGPU when it returns NaN or infinity
      -o, --output FILE      PNG to write (default image.png)
      -h, --help             show this help
    """

    static func run(_ arguments: [String]) throws {
        let args = try Arguments(arguments, options: ["--resources", "--prompt", "--negative-prompt", "--steps", "--guidance",
                                                      "--seed", "--backend", "--python-command", "--precision",
                                                      "--compute-units", "--output"],
                                 flags: ["--reduce-memory", "--retry-on-gpu"], aliases: ["-o": "--output"])
        guard args.positionals.isEmpty else { throw CLIError.usage("unexpected argument \(args.positionals[0].debugDescription)") }
        let folder = fileURL(try args.required("--resources"))
        let request = GenerationRequest(prompt: try args.required("--prompt"), negativePrompt: args.string("--negative-prompt") ?? "",
                                        steps: try args.int("--steps"), guidanceScale: try args.double("--guidance"),
                                        seed: try args.uint64("--seed") ?? 0)
        if let steps = request.steps, steps < 1 {
            throw CLIError.usage("expected --steps >= 1, got \(steps)")
        }
        let units = try computeUnits(args)
        let output = fileURL(args.string("--output") ?? "image.png")
        try checkWritable(output)
        let recovery: Pipeline.NonFiniteRecovery = args.flag("--retry-on-gpu") ? .retryOnCPUAndGPU : .fail
        switch args.string("--backend") ?? "coreml" {
        case "interpreter":
            let precision = args.string("--precision") ?? "fp16"
            guard ["fp16", "fp32"].contains(precision) else {
                throw CLIError.usage("expected --precision fp16 or fp32, got \(precision.debugDescription)")
            }
            let opened = try ConvertedFolder(url: folder)
            try checkBeforeLoading(opened, steps: request.steps)
            let channel = try ProcessChannel(pythonCommand: args.string("--python-command") ?? "snapfusion-coreml",
                                             folder: folder, precision: precision)
            defer { channel.close() }
            let backend = InterpreterBackend(description: opened.description, channel: channel)
            try generate(request, pipeline: try Pipeline(folder: opened, backend: backend), output: output)
        case "coreml":
            #if canImport(CoreML)
            let opened = try ConvertedFolder(url: folder)
            try checkBeforeLoading(opened, steps: request.steps)
            let backend = try CoreMLBackend(folder: opened, configuration: .init(computeUnits: units, reduceMemory: args.flag("--reduce-memory")))
            let pipeline = try Pipeline(folder: opened, backend: backend, nonFiniteRecovery: recovery)
            try backend.load()
            try generate(request, pipeline: pipeline, output: output)
            #else
            _ = (units, recovery)
            throw CLIError.unavailable("--backend coreml needs Core ML, which this platform does not have; use --backend interpreter here")
            #endif
        case let other:
            throw CLIError.usage("expected --backend coreml or interpreter, got \(other.debugDescription)")
        }
    }

    private static func generate(_ request: GenerationRequest, pipeline: Pipeline, output: URL) throws {
        let result = try pipeline.generate(request, cancellation: nil) { progress in
            if progress.stage == .unet { printError("step \(progress.step)/\(progress.totalSteps)") }
        }
        try PNGWriter.write(try RGBAImage(image: result.image), to: output)
        let t = result.timings
        print(String(format: "wrote %@ (sampler %@; text encoder %.1f ms, UNet %.1f ms over %ld steps, decoder %.1f ms, end to end %.1f ms)",
                     output.path, pipeline.description.sampler.name, t.textEncoderMs, t.unetStepMs.reduce(0, +),
                     t.unetStepMs.count, t.decoderMs, t.endToEndMs))
    }
}

/// Refuses, before any model loads, an output that is a folder or whose folder cannot be
/// written (exit 2, as the Python CLI does), instead of failing after the whole generation.
func checkWritable(_ output: URL) throws {
    var isDirectory: ObjCBool = false
    if FileManager.default.fileExists(atPath: output.path, isDirectory: &isDirectory), isDirectory.boolValue {
        throw CLIError.usage("expected an output PNG file, got a folder (in \(output.path))")
    }
    let parent = output.deletingLastPathComponent().path
    guard FileManager.default.fileExists(atPath: parent, isDirectory: &isDirectory), isDirectory.boolValue,
          FileManager.default.isWritableFile(atPath: parent) else {
        throw CLIError.usage("expected a writable folder for \(output.path), got a missing, read-only or inaccessible folder (in \(parent))")
    }
}

/// Bad input found before any model loads (exit 2, not a Core ML failure): a package (or
/// compiled model) pipeline.json names that is a file, or `--steps` beyond the noise schedule.
func checkBeforeLoading(_ folder: ConvertedFolder, steps: Int?) throws {
    let limit = folder.description.noiseSchedule.numTrainTimesteps
    if let steps, steps > limit {
        throw CLIError.usage("expected --steps <= \(limit) (the noise schedule's num_train_timesteps), got \(steps) "
                             + "(in \(folder.url.appendingPathComponent(PipelineDescription.fileName).path))")
    }
    for name in PipelineDescription.ComponentName.allCases where folder.description.component(name) != nil {
        for url in try folder.modelURLs(name) {
            var isDirectory: ObjCBool = false
            if !FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) || !isDirectory.boolValue {
                throw CLIError.usage("expected \(url.lastPathComponent) as a package folder, got a file (in \(folder.url.path))")
            }
        }
    }
}

/// Parses `--compute-units`; nil when not given.
func computeUnits(_ args: Arguments) throws -> ComputeUnits? {
    guard let raw = args.string("--compute-units") else { return nil }
    guard let units = ComputeUnits(argument: raw) else {
        throw CLIError.usage("expected --compute-units one of \(ComputeUnits.allCases.map(\.rawValue).joined(separator: ", ")), got \(raw.debugDescription)")
    }
    return units
}
