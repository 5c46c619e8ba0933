import Foundation

extension PipelineDescription {
    /// Names of the three components in pipeline.json's `components`.
    public enum ComponentName: String, CaseIterable, Sendable {
        case textEncoder = "text_encoder"
        case unet
        case decoder
    }

    /// Decodes and checks pipeline.json bytes; `source` names the file in errors. This is the one
    /// place the file is decoded: `ConvertedFolder` calls it once per folder.
    ///
    /// Beyond the types, the values the app relies on are checked as the Python reader
    /// (snapfusion_coreml/pipeline_json.py) checks them, on the same golden cases: sizes >= 1,
    /// `latent.scale_factor` > 0, `noise_schedule.beta_start` and `beta_end` in (0, 1), a finite
    /// `guidance.default_scale`, `guidance.unet_batch` 1 or 2, `sampler.timesteps` non-empty and
    /// decreasing, every component naming a `file` or `chunks`, and every file name (packages,
    /// vocab, merges) a plain name inside the folder.
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
        guard version == supportedFormatVersion else {
            throw PipelineDescriptionError.unsupportedFormatVersion(version, source)
        }
        let description: PipelineDescription
        do {
            description = try decoder.decode(PipelineDescription.self, from: data)
        } catch let error as DecodingError {
            throw PipelineDescriptionError.malformed(source, Self.describe(error))
        }
        if let problem = description.firstInvalidValue() {
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
        let timesteps = sampler.timesteps
        guard !timesteps.isEmpty, zip(timesteps, timesteps.dropFirst()).allSatisfy({ $0 > $1 }), timesteps.last! >= 0 else {
            return "expected sampler.timesteps as a non-empty list in decreasing order, got \(timesteps)"
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
