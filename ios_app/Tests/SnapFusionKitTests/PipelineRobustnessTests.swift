import Foundation
import Testing
@testable import SnapFusionKit

/// NaN/infinity guard, the async API with progress and previews, and the newer folder format
/// (non-square images, the tokenizer's own pad id) on the fake backend.
@Suite struct PipelineRobustnessTests {
    static func pipeline(_ backend: FakeBackend, recovery: Pipeline.NonFiniteRecovery = .fail,
                         case name: String = "valid") throws -> Pipeline {
        let item = try #require(SamplerTests.trajectories.first)
        var description = try PipelineTests.description(for: item)
        if name != "valid" {
            let newer = try PipelineDescription.decode(try ModelFolder.json(named: name))
            description.image = newer.image
            description.imageSize = newer.imageSize
            description.latent = newer.latent
            description.tokenizer = newer.tokenizer
            description.components = newer.components
        }
        let tokenizer = try CLIPTokenizer(directory: GoldenFiles.tokenizerDirectory, configuration: description.tokenizerConfiguration)
        return Pipeline(description: description, tokenizer: tokenizer, backend: backend, nonFiniteRecovery: recovery)
    }

    @Test func nanFromTheUNetNamesComponentAndStep() throws {
        let backend = FakeBackend()
        backend.poisoned = [.unet: 3]
        let pipeline = try Self.pipeline(backend)
        #expect(throws: PipelineError.nonFiniteOutput(component: .unet, step: 3, count: 1, retried: false)) {
            try pipeline.generate(GenerationRequest(prompt: "a cat", guidanceScale: 7.5))
        }
        #expect(backend.decodeCalls == 0)
        let message = PipelineError.nonFiniteOutput(component: .unet, step: 3, count: 1, retried: false).localizedDescription
        #expect(message.contains("unet at step 3") && message.contains("cpuAndGPU"))
    }

    @Test func nanFromTheDecoderIsAnErrorNotABlackImage() throws {
        let backend = FakeBackend()
        backend.poisoned = [.decoder: 1]
        #expect(throws: PipelineError.nonFiniteOutput(component: .decoder, step: nil, count: 1, retried: false)) {
            try Self.pipeline(backend).generate(GenerationRequest(prompt: "a cat"))
        }
    }

    @Test func retryOnCPUAndGPURecoversTheSameImage() throws {
        let clean = try Self.pipeline(FakeBackend()).generate(GenerationRequest(prompt: "a cat", seed: 5))
        let backend = FakeBackend()
        backend.poisoned = [.unet: 4, .decoder: 1]
        backend.canFallBack = true
        let result = try Self.pipeline(backend, recovery: .retryOnCPUAndGPU).generate(GenerationRequest(prompt: "a cat", seed: 5))
        #expect(backend.fellBack == [.unet, .decoder])
        #expect(result.latents == clean.latents && result.image == clean.image)
        #expect(backend.unetBatches.count == 9)  // step 4 ran twice
    }

    @Test func retryThatCannotMoveStillFailsClearly() throws {
        let backend = FakeBackend()
        backend.poisoned = [.textEncoder: 1]
        #expect(throws: PipelineError.nonFiniteOutput(component: .textEncoder, step: nil, count: 1, retried: false)) {
            try Self.pipeline(backend, recovery: .retryOnCPUAndGPU).generate(GenerationRequest(prompt: "a cat"))
        }
    }

    @Test func asyncRunStreamsEveryStageWithPreviews() async throws {
        let backend = FakeBackend()
        let pipeline = try Self.pipeline(backend)
        let request = GenerationRequest(prompt: "a red bicycle", seed: 9)
        let expected = try pipeline.generate(request, cancellation: nil)  // the synchronous path
        let run = pipeline.start(request, previewEvery: 3)
        var stages: [GenerationProgress.Stage] = []
        var previews: [Int] = []
        for await progress in run.progress {
            stages.append(progress.stage)
            if let preview = progress.preview {
                previews.append(progress.step)
                #expect(preview.width == 64 && preview.height == 64)
            }
        }
        let result = try await run.result
        #expect(stages == [.textEncoder] + [GenerationProgress.Stage](repeating: .unet, count: 8) + [.decoder, .done])
        #expect(previews == [3, 6])
        #expect(result.latents == expected.latents && result.image == expected.image)
    }

    @Test func cancellingARunStopsIt() async throws {
        let backend = FakeBackend()
        let pipeline = try Self.pipeline(backend)
        // The first UNet call waits until the run is cancelled, so the run cannot finish first.
        let inUnet = DispatchSemaphore(value: 0), cancelled = DispatchSemaphore(value: 0)
        backend.onPredict = { inUnet.signal(); cancelled.wait(); cancelled.signal() }
        let run = pipeline.start(GenerationRequest(prompt: "x"))
        await Task.detached { inUnet.wait() }.value
        run.cancel()
        cancelled.signal()
        for await _ in run.progress {}
        await #expect(throws: PipelineError.cancelled) { try await run.result }
        #expect(backend.unetBatches.count == 1)
    }

    @Test func nonSquareImagesKeepHeightAndWidthApart() throws {
        let pipeline = try Self.pipeline(FakeBackend(), case: "non_square_float_ids_pad0")
        #expect(pipeline.description.imageHeight == 96 && pipeline.description.imageWidth == 64)
        #expect(pipeline.description.imageSize == nil)
        let result = try pipeline.generate(GenerationRequest(prompt: "a tall tower", seed: 11))
        #expect(result.latents.shape == [1, 4, 12, 8])
        #expect(result.image.shape == [1, 3, 96, 64])
        // The initial noise is torch.randn((1, 4, 12, 8)): 384 values in row-major order.
        var generator = TorchRandomSource(seed: 11)
        #expect(generator.normalTensor(shape: pipeline.description.latentShape).shape == [1, 4, 12, 8])
        let pixels = try RGBAImage(image: result.image)
        #expect(pixels.width == 64 && pixels.height == 96)
        // A pixel in the lower half comes from latent row 10, column 7 (channel 0).
        let latent = result.latents.scalars[10 * 8 + 7] / Float(0.18215)
        let expected = UInt8(min(max((Float(tanh(Double(latent) / 4)) + 1) / 2 * 255, 0), 255).rounded())
        #expect(pixels.bytes[(83 * 64 + 60) * 4] == expected)
        let png = PNGEncoder.encode(pixels)
        let decoded = try #require(PNGReader.read(png))
        #expect(decoded.width == 64 && decoded.height == 96)
        #expect(decoded.rgb[(83 * 64 + 60) * 3] == expected)
    }

    @Test func tokenizerPadsWithTheFoldersPadId() throws {
        let pipeline = try Self.pipeline(FakeBackend(), case: "non_square_float_ids_pad0")
        let ids = pipeline.tokenizer.encode("a photo of an astronaut")
        #expect(Array(ids.prefix(7)) == [49406, 320, 1125, 539, 550, 18376, 49407])
        #expect(ids.count == 77 && ids.dropFirst(7).allSatisfy { $0 == 0 })
        let sd1 = try CLIPTokenizer(directory: GoldenFiles.tokenizerDirectory).encode("a photo of an astronaut")
        #expect(sd1.dropFirst(7).allSatisfy { $0 == 49407 })
    }

    @Test func pngChecksumsMatchTheirSpecifications() {
        #expect(PNGEncoder.crc32(Array("IEND".utf8)) == 0xAE42_6082)
        #expect(PNGEncoder.adler32(Array("Wikipedia".utf8)) == 0x11E6_0398)
    }

    @Test func largePNGSpansSeveralStoredBlocks() throws {
        let bytes = (0..<(200 * 150 * 4)).map { UInt8(truncatingIfNeeded: $0 * 7) }
        let image = RGBAImage(width: 200, height: 150, bytes: bytes)
        let decoded = try #require(PNGReader.read(PNGEncoder.encode(image)))
        #expect(decoded.width == 200 && decoded.height == 150)
        let expected = (0..<(200 * 150)).flatMap { bytes[($0 * 4)..<($0 * 4 + 3)] }
        #expect(decoded.rgb == expected)
    }
}

/// Reads back what `PNGEncoder` writes (stored deflate blocks, filter 0), checking every CRC.
enum PNGReader {
    static func read(_ png: [UInt8]) -> (width: Int, height: Int, rgb: [UInt8])? {
        guard png.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) else { return nil }
        func u32(_ i: Int) -> Int { Int(png[i]) << 24 | Int(png[i + 1]) << 16 | Int(png[i + 2]) << 8 | Int(png[i + 3]) }
        var i = 8, width = 0, height = 0
        var zlib: [UInt8] = []
        while i + 12 <= png.count {
            let length = u32(i)
            let type = String(decoding: png[(i + 4)..<(i + 8)], as: UTF8.self)
            let data = Array(png[(i + 8)..<(i + 8 + length)])
            guard PNGEncoder.crc32(png[(i + 4)..<(i + 8 + length)]) == UInt32(u32(i + 8 + length)) else { return nil }
            if type == "IHDR" { (width, height) = (u32(i + 8), u32(i + 12)) }
            if type == "IDAT" { zlib += data }
            i += 12 + length
        }
        var raw: [UInt8] = []
        var p = 2
        while p < zlib.count - 4 {
            let final = zlib[p] & 1
            let length = Int(zlib[p + 1]) | Int(zlib[p + 2]) << 8
            raw += zlib[(p + 5)..<(p + 5 + length)]
            p += 5 + length
            if final == 1 { break }
        }
        guard PNGEncoder.adler32(raw) == UInt32(Int(zlib[p]) << 24 | Int(zlib[p + 1]) << 16 | Int(zlib[p + 2]) << 8 | Int(zlib[p + 3])) else { return nil }
        var rgb: [UInt8] = []
        for row in 0..<height {
            let start = row * (1 + width * 3)
            guard raw[start] == 0 else { return nil }
            rgb += raw[(start + 1)..<(start + 1 + width * 3)]
        }
        return (width, height, rgb)
    }
}
