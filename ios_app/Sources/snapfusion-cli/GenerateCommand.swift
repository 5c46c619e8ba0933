import Foundation
import SnapFusionKit

/// `snapfusion-cli generate`: one image from a prompt, with Core ML, Core AI or the Python interpreter.
enum GenerateCommand: Command {
    static let name = "generate"
    static let summary = "generate an image with Core ML or Core AI (macOS) or the Python Core ML interpreter (anywhere)"
    static let help = """
    usage: snapfusion-cli generate --resources DIR --prompt TEXT [options]

    Generates one image from a converted folder (snapfusion-coreml convert -o DIR) and writes a PNG.
    --backend apple runs the folder with Apple's runtime for its format: Core ML for .mlpackage folders
    (macOS 13+; apps on iOS 16+), Core AI for .aimodel folders (macOS 27). --backend interpreter runs the packages
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
      --init-image FILE      image-to-image: the starting image as a binary PPM (P6, 8-bit RGB); needs a folder
                             converted with the encoder. PPM because this tool decodes images without
                             dependencies and Linux has no PNG decoder (no zlib): from a PNG,
                             python -c "from PIL import Image; Image.open('in.png').convert('RGB').save('in.ppm')"
                             (the Python `generate --init-image` reads the same file). It must have the
                             generated size, except on macOS, where another size is center-cropped to the
                             aspect ratio and resized (Core Graphics, high quality)
      --strength S           image-to-image: share of the schedule that runs, in (0, 1] (default 0.8;
                             only with --init-image)
      --image-size HxW       one of the folder's sizes (pipeline.json sizes; height first, e.g. 512x768);
                             default: the folder's first size
      --backend B            apple | interpreter (default apple; coreml is accepted for apple)
      --python-command CMD   interpreter: the command that runs the Python CLI (default snapfusion-coreml;
                             e.g. ".venv/bin/python -m snapfusion_coreml")
      --precision P          interpreter: fp16 (as on device, default) | fp32
      --compute-units U      apple, Core ML folders: cpuOnly | cpuAndGPU | cpuAndNeuralEngine | all (default: what the folder's
                             attention was converted for: original -> cpuAndGPU, else cpuAndNeuralEngine)
      --reduce-memory        apple, Core ML folders: keep one model in memory at a time
      --retry-on-gpu         apple, Core ML folders: rerun a component on cpuAndGPU when it returns NaN or infinity
      -o, --output FILE      PNG to write (default image.png)
      -h, --help             show this help
    """

    static func run(_ arguments: [String]) throws {
        let args = try Arguments(arguments, options: ["--resources", "--prompt", "--negative-prompt", "--steps", "--guidance",
                                                      "--seed", "--backend", "--python-command", "--precision",
                                                      "--compute-units", "--output", "--init-image", "--strength", "--image-size"],
                                 flags: ["--reduce-memory", "--retry-on-gpu"], aliases: ["-o": "--output"])
        guard args.positionals.isEmpty else { throw CLIError.usage("unexpected argument \(args.positionals[0].debugDescription)") }
        let folder = fileURL(try args.required("--resources"))
        var request = GenerationRequest(prompt: try args.required("--prompt"), negativePrompt: args.string("--negative-prompt") ?? "",
                                        steps: try args.int("--steps"), guidanceScale: try args.double("--guidance"),
                                        seed: try args.uint64("--seed") ?? 0)
        if let steps = request.steps, steps < 1 {
            throw CLIError.usage("expected --steps >= 1, got \(steps)")
        }
        request.imageSize = try args.string("--image-size").map(parseImageSize)
        request.strength = try args.double("--strength")
        if let strength = request.strength {
            guard args.string("--init-image") != nil else { throw CLIError.usage("--strength needs --init-image (it is for image-to-image only)") }
            guard strength > 0, strength <= 1 else { throw CLIError.usage("expected --strength in (0, 1], got \(strength)") }
        }
        if let path = args.string("--init-image") {
            request.initImage = try readInitImage(fileURL(path))
        }
        let units = try computeUnits(args)
        let output = fileURL(args.string("--output") ?? "image.png")
        try checkWritable(output)
        let recovery: Pipeline.NonFiniteRecovery = args.flag("--retry-on-gpu") ? .retryOnCPUAndGPU : .fail
        switch args.string("--backend") ?? "apple" {
        case "interpreter":
            let precision = args.string("--precision") ?? "fp16"
            guard ["fp16", "fp32"].contains(precision) else {
                throw CLIError.usage("expected --precision fp16 or fp32, got \(precision.debugDescription)")
            }
            let opened = try ConvertedFolder(url: folder)
            try checkBeforeLoading(opened, request: request)
            let channel = try ProcessChannel(pythonCommand: args.string("--python-command") ?? "snapfusion-coreml",
                                             folder: folder, precision: precision)
            defer { channel.close() }
            let backend = InterpreterBackend(description: opened.description, channel: channel)
            try generate(request, pipeline: try Pipeline(folder: opened, backend: backend), output: output)
        case "coreml":
            #if canImport(CoreML)
            let opened = try ConvertedFolder(url: folder)
            try checkBeforeLoading(opened, request: request)
            let backend = try CoreMLBackend(folder: opened, configuration: .init(computeUnits: units, reduceMemory: args.flag("--reduce-memory")))
            let pipeline = try Pipeline(folder: opened, backend: backend, nonFiniteRecovery: recovery)
            try backend.load()
            try generate(request, pipeline: pipeline, output: output)
            #else
            _ = (units, recovery)
            throw CLIError.unavailable("--backend apple needs Core ML or Core AI, which this platform does not have; use --backend interpreter here")
            #endif
        case let other:
            throw CLIError.usage("expected --backend apple or interpreter, got \(other.debugDescription)")
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

/// `--image-size HxW` (height first, as the Python CLI takes it).
func parseImageSize(_ raw: String) throws -> PipelineDescription.ImageSize {
    let parts = raw.lowercased().split(separator: "x", omittingEmptySubsequences: false)
    guard parts.count == 2, let height = Int(parts[0]), let width = Int(parts[1]), height >= 1, width >= 1 else {
        throw CLIError.usage("expected --image-size as HxW (height x width, e.g. 512x768), got \(raw.debugDescription)")
    }
    return .init(height: height, width: width)
}

/// The `--init-image` PPM file's pixels (one clear line for a missing or malformed file).
func readInitImage(_ url: URL) throws -> RGBImage {
    guard let data = FileManager.default.contents(atPath: url.path) else {
        throw CLIError.usage("expected --init-image as a readable PPM file, got a missing or unreadable file (\(url.path))")
    }
    do {
        return try PPMDecoder.decode(Array(data))
    } catch let error as PPMError {
        throw CLIError.usage("\(error.localizedDescription) (in \(url.path))")
    }
}

/// Bad input found before any model loads (exit 2, not a Core ML failure): a package (or
/// compiled model) pipeline.json names that is a file, `--steps` beyond the noise schedule, a
/// size the folder lacks, or image-to-image that cannot run (no encoder, a strength leaving no
/// step, a starting image of another size where it cannot be resized).
func checkBeforeLoading(_ folder: ConvertedFolder, request: GenerationRequest) throws {
    let steps = request.steps
    let description = folder.description
    do {
        let size = try request.imageSize.map { try description.size(height: $0.height, width: $0.width) } ?? description.availableSizes[0]
        if let image = request.initImage {
            guard description.components.encoder != nil else { throw PipelineError.missingEncoder }
            _ = try ImageToImage.beginIndex(steps: steps ?? description.sampler.defaultSteps,
                                            strength: request.strength ?? GenerationRequest.defaultStrength)
            try image.checkPreparable(for: size.image)
        }
    } catch let error as PipelineError {
        throw CLIError.usage("\(error.localizedDescription) (in \(folder.url.appendingPathComponent(PipelineDescription.fileName).path))")
    }
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
