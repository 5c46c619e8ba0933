import Foundation

extension PipelineDescription {
    /// Names of the components in pipeline.json's `components`.
    public enum ComponentName: String, CaseIterable, Sendable {
        case textEncoder = "text_encoder"
        case unet
        case decoder
        /// The VAE encoder of image-to-image (optional, format_version 3).
        case encoder

        /// What text-to-image needs (and `ConvertedFolder` requires by default).
        public static let textToImage: [ComponentName] = [.textEncoder, .unet, .decoder]

        /// Whether the component's packages hold one function per entry of `sizes`
        /// (everything but the text encoder).
        public var isSizeDependent: Bool { self != .textEncoder }
    }

    /// Decodes and checks pipeline.json bytes; `source` names the file in errors. This is the one
    /// place the file is decoded: `ConvertedFolder` calls it once per folder.
    ///
    /// Beyond the types, the values the app relies on are checked as the Python reader
    /// (snapfusion_coreml/contracts/pipeline_json.py) checks them, on the same golden cases: sizes >= 1,
    /// `latent.scale_factor` > 0, `noise_schedule.beta_start` and `beta_end` in (0, 1), a finite
    /// `guidance.default_scale`, `guidance.unet_batch` 1 or 2, every component naming a `file` or
    /// `chunks`, every file name (packages, vocab, merges) a plain name inside the folder; the
    /// sampler record as `firstInvalidSamplerValue` says. An unknown `sampler.name` throws
    /// `PipelineDescriptionError.unsupportedSampler`.
    public static func decode(_ data: Data, source: String = fileName) throws -> PipelineDescription {
        struct VersionProbe: Decodable { var formatVersion: Int? }
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let probe: VersionProbe
        do { probe = try decoder.decode(VersionProbe.self, from: data) } catch {
            throw PipelineDescriptionError.malformed(source, "invalid JSON: \(error.localizedDescription)")
        }
        guard let version = probe.formatVersion else {
            throw PipelineDescriptionError.malformed(source, "missing key \"format_version\"")
        }
        guard supportedFormatVersions.contains(version) else {
            throw PipelineDescriptionError.unsupportedFormatVersion(version, source)
        }
        let description: PipelineDescription
        do {
            description = try decoder.decode(PipelineDescription.self, from: data)
        } catch let error as DecodingError {
            throw PipelineDescriptionError.malformed(source, Self.describe(error))
        }
        if description.formatVersion >= 2, description.samplerName == nil {
            throw PipelineDescriptionError.unsupportedSampler(description.sampler.name, source)
        }
        if let problem = description.firstInvalidValue() ?? description.firstInvalidSizesValue()
            ?? description.firstInvalidSamplerValue() {
            throw PipelineDescriptionError.malformed(source, problem)
        }
        return description
    }

    /// The component called `name`, if the folder has it.
    public func component(_ name: ComponentName) -> Component? {
        switch name {
        case .textEncoder: return components.textEncoder
        case .unet: return components.unet
        case .decoder: return components.decoder
        case .encoder: return components.encoder
        }
    }

    /// The dtypes a declared tensor may have (Core ML multi-array types; Python: `TENSOR_DTYPES`).
    static let tensorDTypes = ["float32", "float16", "int32"]

    /// "expected KEY ..., got VALUE" for the first value the types allow but the contract does not.
    func firstInvalidValue() -> String? {
        var sizes: [(String, Int)] = [("latent.channels", latent.channels), ("latent.height", latent.height),
                                      ("latent.width", latent.width), ("tokenizer.max_length", tokenizer.maxLength),
                                      ("sampler.default_steps", sampler.defaultSteps),
                                      ("noise_schedule.num_train_timesteps", noiseSchedule.numTrainTimesteps)]
        if let image { sizes += [("image.height", image.height), ("image.width", image.width)] }
        if let imageSize { sizes.append(("image_size", imageSize)) }
        for (index, entry) in (self.sizes ?? []).enumerated() {
            sizes += [("sizes[\(index)].image.height", entry.image.height), ("sizes[\(index)].image.width", entry.image.width),
                      ("sizes[\(index)].latent.height", entry.latent.height), ("sizes[\(index)].latent.width", entry.latent.width)]
        }
        for name in ComponentName.allCases {
            guard let component = component(name) else { continue }
            for (kind, tensors) in [("inputs", component.inputs), ("outputs", component.outputs)] {
                for (index, tensor) in tensors.enumerated() {
                    sizes += tensor.shape.enumerated().map { ("components.\(name.rawValue).\(kind)[\(index)].shape[\($0)]", $1) }
                }
            }
        }
        if let (key, value) = sizes.first(where: { $0.1 < 1 }) {
            return "expected \(key) >= 1, got \(value)"
        }
        guard latent.scaleFactor.isFinite, latent.scaleFactor > 0 else {
            return "expected latent.scale_factor as a number > 0, got \(latent.scaleFactor)"
        }
        for (key, value) in [("noise_schedule.beta_start", noiseSchedule.betaStart),
                             ("noise_schedule.beta_end", noiseSchedule.betaEnd)] where !(value > 0 && value < 1) {
            return "expected \(key) as a number in (0, 1), got \(value)"
        }
        guard guidance.defaultScale.isFinite else {
            return "expected guidance.default_scale as a finite number, got \(guidance.defaultScale)"
        }
        var names = [("tokenizer.vocab", tokenizer.vocab), ("tokenizer.merges", tokenizer.merges)]
        for name in ComponentName.allCases {
            guard let component = component(name) else { continue }
            names += component.files.map { ("components.\(name.rawValue)", $0) }
        }
        if let (key, value) = names.first(where: { !Self.isFileName($0.1) }) {
            return "expected \(key) as a file name inside the folder (no / or \\, not . or ..), got \(value)"
        }
        guard guidance.unetBatch == 1 || guidance.unetBatch == 2 else {
            return "expected guidance.unet_batch 1 or 2, got \(guidance.unetBatch)"
        }
        for name in ComponentName.allCases {
            guard let component = component(name) else { continue }
            if component.files.isEmpty {
                return "expected components.\(name.rawValue) with a file or chunks, got neither"
            }
            for (kind, tensors) in [("inputs", component.inputs), ("outputs", component.outputs)] {
                if let (index, tensor) = tensors.enumerated().first(where: { !Self.tensorDTypes.contains($1.dtype) }) {
                    return "expected components.\(name.rawValue).\(kind)[\(index)].dtype as "
                        + Self.tensorDTypes.joined(separator: " or ") + ", got \(tensor.dtype)"
                }
            }
        }
        return nil
    }

    /// "expected sizes ..., got ..." for the first `sizes` value the contract does not allow: an
    /// empty list (absent or null means one size), a function name other than `image_{H}x{W}` of
    /// its image, an image other than 8 x its latent, an image size listed twice, or a first entry
    /// (the default) other than the top-level `image` and `latent`. Dimensions >= 1 are checked
    /// with the other sizes (`firstInvalidValue`).
    func firstInvalidSizesValue() -> String? {
        guard let sizes else { return nil }
        guard let first = sizes.first else { return "expected sizes as a non-empty list (null for one size), got []" }
        var functions = Set<String>()
        var images = Set<String>()
        for (index, entry) in sizes.enumerated() {
            guard !entry.function.isEmpty, functions.insert(entry.function).inserted else {
                return "expected sizes[\(index)].function as a distinct non-empty name, got \"\(entry.function)\""
            }
            guard images.insert(entry.label).inserted else {
                return "expected sizes[\(index)].image as a size listed once, got \(entry.label) again"
            }
            let named = "image_\(entry.image.height)x\(entry.image.width)"
            guard entry.function == named else {
                return "expected sizes[\(index)].function \"\(named)\" (its image's), got \"\(entry.function)\""
            }
            guard entry.image.height == 8 * entry.latent.height, entry.image.width == 8 * entry.latent.width else {
                return "expected sizes[\(index)].image 8 x its latent \(entry.latent.height)x\(entry.latent.width), got \(entry.label)"
            }
        }
        guard first.image.height == imageHeight, first.image.width == imageWidth,
              first.latent.height == latent.height, first.latent.width == latent.width else {
            return "expected sizes[0] (the default) equal to the top-level image \(imageHeight)x\(imageWidth) and latent "
                + "\(latent.height)x\(latent.width), got image \(first.label) and latent \(first.latent.height)x\(first.latent.width)"
        }
        return nil
    }

    /// "expected sampler.KEY ..., got ..." for the first sampler value the contract does not allow:
    ///
    /// - format_version 1: name "ddim", `eta`, `timestep_spacing`, `steps_offset` and
    ///   `final_alpha_cumprod` present, `timesteps` non-empty, whole, >= 0 and decreasing;
    /// - format_version 2: `timesteps` non-empty; sigma samplers (dpmsolver++, euler,
    ///   euler_ancestral) with `sigmas` of one more value than `timesteps`; alpha samplers (ddim,
    ///   pndm, lcm, tcd) with one `previous_timesteps` entry per timestep, pndm also with one
    ///   `current_timesteps` entry per timestep; alpha samplers' timesteps whole numbers in
    ///   [0, num_train_timesteps); `guidance.embedding` naming input
    ///   "timestep_cond" with dim >= 1.
    func firstInvalidSamplerValue() -> String? {
        let timesteps = sampler.timesteps
        guard formatVersion >= 2 else {
            guard sampler.name == SamplerName.ddim.rawValue else {
                return "expected sampler.name ddim in format_version 1, got \"\(sampler.name)\""
            }
            let required: [(String, Any?)] = [("eta", sampler.eta), ("timestep_spacing", sampler.timestepSpacing),
                                              ("steps_offset", sampler.stepsOffset), ("final_alpha_cumprod", sampler.finalAlphaCumprod)]
            if let (key, _) = required.first(where: { $0.1 == nil }) {
                return "missing key \"sampler.\(key)\""
            }
            guard !timesteps.isEmpty, timesteps.allSatisfy({ $0 >= 0 && $0 == $0.rounded() }),
                  zip(timesteps, timesteps.dropFirst()).allSatisfy({ $0 > $1 }) else {
                return "expected sampler.timesteps as a non-empty list in decreasing order, got \(timesteps.map { Int(exactly: $0).map(String.init) ?? String($0) })"
            }
            return nil
        }
        guard !timesteps.isEmpty else { return "expected sampler.timesteps as a non-empty list, got []" }
        guard let name = samplerName else { return nil }
        func count<T>(_ key: String, _ list: [T]?, _ expected: Int, _ meaning: String) -> String? {
            guard let list else { return "expected sampler.\(key) as a list of \(expected) values (\(meaning)), got none" }
            return list.count == expected ? nil
                : "expected sampler.\(key) as a list of \(expected) values (\(meaning)), got \(list.count)"
        }
        if name.usesSigmas, let problem = count("sigmas", sampler.sigmas, timesteps.count + 1,
                                                 "one per timestep, then the final sigma") {
            return problem
        }
        if name.usesPreviousTimesteps, let problem = count("previous_timesteps", sampler.previousTimesteps, timesteps.count,
                                                            "one per timestep") {
            return problem
        }
        let trainSteps = noiseSchedule.numTrainTimesteps
        if !name.usesSigmas, let bad = timesteps.first(where: { $0 != $0.rounded() || $0 < 0 || $0 >= Double(trainSteps) }) {
            return "expected sampler.timesteps as whole numbers in 0..<\(trainSteps) for sampler \(name.rawValue), got \(bad)"
        }
        if name == .pndm, let problem = count("current_timesteps", sampler.currentTimesteps, timesteps.count, "one per timestep") {
            return problem
        }
        if let embedding = guidance.embedding {
            guard embedding.input == ResourceNames.unetTimestepCond else {
                return "expected guidance.embedding.input \"\(ResourceNames.unetTimestepCond)\", got \"\(embedding.input)\""
            }
            guard embedding.dim >= 1 else { return "expected guidance.embedding.dim >= 1, got \(embedding.dim)" }
        }
        return nil
    }

    /// One path component that stays in its folder (Python: `json_fields.is_file_name`).
    static func isFileName(_ name: String) -> Bool {
        !name.isEmpty && !name.contains("/") && !name.contains("\\") && !name.contains("\0") && name != "." && name != ".."
    }

    private static func describe(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context) -> String {
            context.codingPath.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")
        }
        switch error {
        case let .keyNotFound(key, context):
            let prefix = path(context)
            return "missing key \"\(prefix.isEmpty ? "" : prefix + ".")\(key.stringValue)\""
        case let .typeMismatch(type, context):
            return "expected \(type) at \"\(path(context))\""
        case let .valueNotFound(type, context):
            return "expected \(type) at \"\(path(context))\", got null"
        case let .dataCorrupted(context):
            return "invalid value at \"\(path(context))\": \(context.debugDescription)"
        @unknown default:
            return String(describing: error)
        }
    }
}
