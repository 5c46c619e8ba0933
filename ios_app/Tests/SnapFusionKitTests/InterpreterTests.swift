import Foundation
import Testing
@testable import SnapFusionKit

/// An in-memory interpreter server: parses each request exactly as the protocol says and
/// answers with `FakeBackend`'s outputs, so the client's framing is tested both ways.
final class FakeInterpreterServer: InterpreterChannel, @unchecked Sendable {
    let model = FakeBackend()
    private var incoming: [UInt8] = []
    private var outgoing: [UInt8] = []
    private(set) var requests: [(component: String, inputs: [(name: String, dtype: String, shape: [Int])])] = []
    /// The `"function"` field of every request (nil where absent).
    private(set) var functions: [String?] = []
    /// Answer every request with this error instead.
    var error: String?
    /// Stop answering after this many bytes of the next response.
    var truncateAfter: Int?

    func write(_ bytes: [UInt8]) throws {
        incoming += bytes
        guard let newline = incoming.firstIndex(of: 0x0A) else { return }
        let header = try JSONSerialization.jsonObject(with: Data(incoming[..<newline])) as! [String: Any]
        let component = header["component"] as! String
        let specs = (header["inputs"] as! [[String: Any]]).map {
            (name: $0["name"] as! String, dtype: $0["dtype"] as! String, shape: $0["shape"] as! [Int])
        }
        var offset = newline + 1
        var tensors: [String: Tensor] = [:]
        for spec in specs {
            let count = spec.shape.reduce(1, *) * 4
            let bytes = Array(incoming[offset..<(offset + count)])
            offset += count
            tensors[spec.name] = try bytes.withUnsafeBytes {
                try Tensor(shape: spec.shape, scalarType: ScalarType(rawValue: spec.dtype)!, bytes: $0)
            }
        }
        incoming.removeFirst(offset)
        requests.append((component, specs))
        functions.append(header["function"] as? String)
        var response: [UInt8]
        if let error {
            response = Array(try JSONSerialization.data(withJSONObject: ["error": error])) + [0x0A]
        } else {
            let (name, out): (String, Tensor)
            switch component {
            case "text_encoder":
                out = try model.encodeText(tokenIDs: tensors["input_ids"]!.scalars.map { Int32($0) })
                name = "last_hidden_state"
            case "unet":
                out = try model.predictNoise(sample: tensors["sample"]!, timestep: tensors["timestep"]!.scalars,
                                             encoderHiddenStates: tensors["encoder_hidden_states"]!,
                                             timestepCond: tensors["timestep_cond"])
                name = "noise_pred"
            case "encoder":
                out = try model.encodeImage(tensors["z"]!)
                name = "latent"
            default:
                out = try model.decode(latents: tensors["z"]!)
                name = "image"
            }
            let header: [String: Any] = ["outputs": [["name": name, "dtype": "float32", "shape": out.shape]]]
            response = Array(try JSONSerialization.data(withJSONObject: header)) + [0x0A] + out.float32Bytes
        }
        if let limit = truncateAfter { response = Array(response.prefix(limit)) }
        outgoing += response
    }

    func readLine() throws -> [UInt8] {
        guard let newline = outgoing.firstIndex(of: 0x0A) else { throw InterpreterError.closed("end of stream") }
        defer { outgoing.removeFirst(newline + 1) }
        return Array(outgoing[..<newline])
    }

    func read(count: Int) throws -> [UInt8] {
        guard outgoing.count >= count else { throw InterpreterError.closed("end of stream") }
        defer { outgoing.removeFirst(count) }
        return Array(outgoing[..<count])
    }
}

@Suite struct InterpreterTests {
    /// A guidance-embedding folder (full LCM): the UNet request carries `timestep_cond` (1, 256) as
    /// one more named float32 input, and the run equals the backend the server wraps.
    @Test func guidanceEmbeddingTravelsAsTheTimestepCondInput() throws {
        let item = try PipelineSamplerTests.golden("lcm_4_steps")
        let direct = try PipelineSamplerTests.pipeline("v2_lcm_guidance_embedding", item, backend: FakeBackend())
        let server = FakeInterpreterServer()
        let remote = Pipeline(description: direct.description, tokenizer: direct.tokenizer,
                              backend: InterpreterBackend(description: direct.description, channel: server))
        let request = GenerationRequest(prompt: "a photo of an astronaut", seed: item.seed)
        #expect(try remote.generate(request).latents == (try direct.generate(request).latents))
        let unet = server.requests.filter { $0.component == "unet" }
        #expect(unet.count == 4)
        #expect(unet.allSatisfy { $0.inputs.map(\.name) == ["sample", "timestep", "encoder_hidden_states", "timestep_cond"] })
        #expect(unet.allSatisfy { $0.inputs.last.map { $0.dtype == "float32" && $0.shape == [1, 256] } == true })
        #expect(server.model.timestepConds.allSatisfy { $0 == GuidanceEmbedding.embedding(guidanceScale: 8.5, dim: 256) })
    }

    @Test(arguments: ["valid", "non_square_float_ids_pad0", "legacy_image_size_int32_ids"]) func pipelineOverTheProtocolMatchesTheBackendItWraps(name: String) throws {
        let direct = try PipelineRobustnessTests.pipeline(FakeBackend(), case: name)
        let server = FakeInterpreterServer()
        let backend = InterpreterBackend(description: direct.description, channel: server)
        let remote = Pipeline(description: direct.description, tokenizer: direct.tokenizer, backend: backend)
        let request = GenerationRequest(prompt: "a photo of an astronaut", guidanceScale: 7.5, seed: 4)
        let a = try direct.generate(request, cancellation: nil)
        let b = try remote.generate(request, cancellation: nil)
        #expect(a.latents == b.latents && a.image == b.image)
        let components = server.requests.map(\.component)
        #expect(components == ["text_encoder", "text_encoder"] + [String](repeating: "unet", count: 8) + ["decoder"])
        let ids = try #require(server.requests.first?.inputs.first)
        #expect(ids.name == "input_ids" && ids.shape == [1, 77])
        #expect(ids.dtype == (name == "legacy_image_size_int32_ids" ? "int32" : "float32"))
        let unet = server.requests[2].inputs
        #expect(unet.map(\.name) == ["sample", "timestep", "encoder_hidden_states"])
        #expect(unet.map(\.shape) == [[2] + Array(direct.description.latentShape.dropFirst()), [2], [2, 8, 1, 77]])
    }

    @Test func errorResponseBecomesATypedError() throws {
        let description = try PipelineDescription.decode(try ModelFolder.json(named: "valid"))
        let server = FakeInterpreterServer()
        server.error = "expected input sample of shape [2, 4, 8, 8], got [2, 4, 9, 8]"
        let backend = InterpreterBackend(description: description, channel: server)
        #expect(throws: InterpreterError.server(component: "decoder", message: server.error!)) {
            try backend.decode(latents: Tensor(repeating: 0, shape: [1, 4, 8, 8]))
        }
    }

    @Test func truncatedResponseIsReportedNotHung() throws {
        let description = try PipelineDescription.decode(try ModelFolder.json(named: "valid"))
        let server = FakeInterpreterServer()
        server.truncateAfter = 100
        let backend = InterpreterBackend(description: description, channel: server)
        #expect(throws: InterpreterError.self) {
            try backend.decode(latents: Tensor(repeating: 0, shape: [1, 4, 8, 8]))
        }
    }

    @Test func requestHeaderIsOneJSONLineFollowedByTheBytes() throws {
        let ids = InterpreterProtocol.Payload(name: "input_ids", int32: [49406, 49407], shape: [1, 2])
        let bytes = try InterpreterProtocol.request(component: .textEncoder, inputs: [ids])
        let newline = try #require(bytes.firstIndex(of: 0x0A))
        let header = String(decoding: bytes[..<newline], as: UTF8.self)
        #expect(header == #"{"component":"text_encoder","inputs":[{"dtype":"int32","name":"input_ids","shape":[1,2]}]}"#)
        #expect(Array(bytes[(newline + 1)...]) == [0xFE, 0xC0, 0x00, 0x00, 0xFF, 0xC0, 0x00, 0x00])  // 49406 = 0xC0FE
    }
}
