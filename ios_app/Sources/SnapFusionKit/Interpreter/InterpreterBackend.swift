import Foundation

/// Runs the converted packages of a folder through the Python Core ML interpreter
/// (`snapfusion-coreml interpret OUT`) over `InterpreterProtocol`, so the whole Swift pipeline
/// (tokenizer, RNG, sampler, guidance, decoding, PNG) runs on real model outputs on any machine
/// with the Python package, Linux included. The server runs a chunked UNet itself.
///
/// Token ids are sent in the dtype pipeline.json declares for the text encoder's `input_ids`
/// (float32 or int32), like the Core ML backend reads it from the model description. For a
/// folder with `sizes`, UNet, decoder and encoder requests name the function of the size their
/// input has (`"function"`); the text encoder has one function and never names it.
public final class InterpreterBackend: DiffusionBackend, @unchecked Sendable {
    public let description: PipelineDescription
    private let channel: any InterpreterChannel
    private let lock = NSLock()

    /// A backend over an open channel to a server started on the same folder.
    public init(description: PipelineDescription, channel: any InterpreterChannel) {
        self.description = description
        self.channel = channel
    }

    /// Nothing to do: the server loads the packages when it starts.
    public func load() throws {}

    /// Nothing to do: the server owns the models until its stdin closes.
    public func unload() {}

    public func encodeText(tokenIDs: [Int32]) throws -> Tensor {
        let declared = description.components.textEncoder?.input(ResourceNames.textEncoderInput)?.dtype
        let shape = [1, tokenIDs.count]
        let ids: InterpreterProtocol.Payload
        switch TokenInputType(dtype: declared) {
        case .float32:
            ids = .init(name: ResourceNames.textEncoderInput, float32: Tensor(validShape: shape, scalars: tokenIDs.map(Float.init)))
        case .int32:
            ids = .init(name: ResourceNames.textEncoderInput, int32: tokenIDs, shape: shape)
        }
        return try call(.textEncoder, [ids], output: ResourceNames.textEncoderOutput)
    }

    /// Sends `timestep_cond` as one more named float32 input when given (the server passes every
    /// input pipeline.json declares to the program).
    public func predictNoise(sample: Tensor, timestep: [Float], encoderHiddenStates: Tensor, timestepCond: Tensor?) throws -> Tensor {
        var inputs: [InterpreterProtocol.Payload] = [
            .init(name: ResourceNames.unetSample, float32: sample),
            .init(name: ResourceNames.unetTimestep, float32: Tensor(validShape: [timestep.count], scalars: timestep)),
            .init(name: ResourceNames.unetHiddenStates, float32: encoderHiddenStates),
        ]
        if let timestepCond {
            inputs.append(.init(name: ResourceNames.unetTimestepCond, float32: timestepCond))
        }
        return try call(.unet, inputs, function: try latentFunction(sample), output: ResourceNames.unetOutput)
    }

    public func decode(latents: Tensor) throws -> Tensor {
        try call(.decoder, [.init(name: ResourceNames.decoderInput, float32: latents)], function: try latentFunction(latents),
                 output: ResourceNames.decoderOutput)
    }

    /// Runs component "encoder" (`z` -> `latent`).
    public func encodeImage(_ image: Tensor) throws -> Tensor {
        guard description.components.encoder != nil else { throw PipelineError.missingEncoder }
        guard image.shape.count == 4 else { throw TensorError.rankMismatch(expected: 4, shape: image.shape) }
        let function = try description.function(imageHeight: image.shape[2], width: image.shape[3])
        return try call(.encoder, [.init(name: ResourceNames.encoderInput, float32: image)], function: function,
                        output: ResourceNames.encoderOutput)
    }

    /// The function of the size whose latent `(B, C, h, w)` has this h and w (nil without `sizes`).
    private func latentFunction(_ latents: Tensor) throws -> String? {
        guard description.sizes != nil else { return nil }
        guard latents.shape.count == 4 else { throw TensorError.rankMismatch(expected: 4, shape: latents.shape) }
        return try description.function(latentHeight: latents.shape[2], width: latents.shape[3])
    }

    private func call(_ component: PipelineDescription.ComponentName, _ inputs: [InterpreterProtocol.Payload],
                      function: String? = nil, output: String) throws -> Tensor {
        lock.lock()
        defer { lock.unlock() }
        let outputs = try InterpreterProtocol.call(channel, component: component, function: function, inputs: inputs)
        guard let payload = outputs.first(where: { $0.name == output }) else {
            throw InterpreterError.missingOutput(output, component: component.rawValue)
        }
        return try payload.tensor()
    }
}
