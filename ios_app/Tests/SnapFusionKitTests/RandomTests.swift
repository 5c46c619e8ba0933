import Foundation
import Testing
@testable import SnapFusionKit

struct RandomGolden: Decodable {
    struct Case: Decodable, Sendable, CustomTestStringConvertible {
        var testDescription: String { "seed \(seed) shape \(shape)" }
        var seed: UInt64
        var shape: [Int]
        var values: [Float]
    }
    /// Every `stride`-th value of torch.randn at real latent shapes.
    struct Sample: Decodable, Sendable, CustomTestStringConvertible {
        var testDescription: String { "seed \(seed) shape \(shape)" }
        var seed: UInt64
        var shape: [Int]
        var stride: Int
        var values: [Float]
        /// FNV-1a 64 of all the tensor's float32 values (little-endian, C order), 16 hex digits.
        var fnv1a64: String
    }
    var cases: [Case]
    var latentSamples: [Sample]
}

@Suite struct RandomTests {
    static let golden = Result { try GoldenFiles.load(RandomGolden.self, "random.json") }

    static let cases = (try? golden.get().cases) ?? []

    @Test(arguments: cases) func matchesTorchRandn(item: RandomGolden.Case) throws {
        var generator = TorchRandomSource(seed: item.seed)
        let tensor = generator.normalTensor(shape: item.shape)
        #expect(tensor.shape == item.shape)
        #expect(tensor.count == item.values.count)
        // Bit for bit: the same uniforms and the same float operations as PyTorch's kernel.
        let differing = zip(tensor.scalars, item.values).filter { $0.bitPattern != $1.bitPattern }.count
        #expect(differing == 0, "seed \(item.seed) shape \(item.shape): \(differing) of \(item.values.count) values differ")
    }

    static let latentSamples = (try? golden.get().latentSamples) ?? []

    /// 1x4x64x64 and 1x4x96x64, every 41st value and a digest of all values: torch fills these
    /// with its vectorised float Box-Muller, reproduced operation for operation, so the values are
    /// bit-identical.
    @Test(arguments: latentSamples) func matchesTorchOnRealLatentShapes(item: RandomGolden.Sample) throws {
        var generator = TorchRandomSource(seed: item.seed)
        let tensor = generator.normalTensor(shape: item.shape)
        let sampled = stride(from: 0, to: tensor.count, by: item.stride).map { tensor.scalars[$0] }
        #expect(sampled.count == item.values.count)
        let identical = zip(sampled, item.values).filter { $0.bitPattern == $1.bitPattern }.count
        let worst = zip(sampled, item.values).map { abs($0 - $1) }.max() ?? 0
        #expect(identical == item.values.count, "\(identical) of \(item.values.count) bit-identical, max |error| \(worst)")
        // Every value, not only the sampled ones: the digest of the whole tensor.
        #expect(Self.fnv1a64(tensor.float32Bytes) == item.fnv1a64, "the full tensor differs from torch's")
        print("torch.randn\(item.shape) seed \(item.seed): \(identical)/\(item.values.count) sampled values bit-identical, max |error| \(worst)")
    }

    /// FNV-1a, 64 bits, as tests/golden/make_golden.py computes it.
    static func fnv1a64(_ bytes: [UInt8]) -> String {
        var digest: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in bytes { digest = (digest ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
        let hex = String(digest, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }

    @Test func goldenCoversEveryPath() throws {
        let counts = try Self.golden.get().cases.map { $0.values.count }
        #expect(counts.count >= 10)
        #expect(counts.contains { $0 < 16 })
        #expect(counts.contains { $0 >= 16 && $0 % 16 == 0 })
        #expect(counts.contains { $0 > 16 && $0 % 16 != 0 })
        // The real latent shapes (512x512 and 768x512 images) are sampled, so the test above has cases.
        let latentShapes = try Self.golden.get().latentSamples.map(\.shape)
        #expect(latentShapes.contains([1, 4, 64, 64]) && latentShapes.contains([1, 4, 96, 64]), "got \(latentShapes)")
    }

    @Test func mersenneTwisterReferenceOutput() {
        // The 10000th output of mt19937 seeded with 5489 is 4123659995 (C++ [rand.predef]).
        var generator = TorchRandomSource(seed: 5489)
        var value: UInt32 = 0
        for _ in 0..<10_000 { value = generator.nextUInt32() }
        #expect(value == 4_123_659_995)
    }

    @Test func sameSeedSameNoise() {
        var a = TorchRandomSource(seed: 7)
        var b = TorchRandomSource(seed: 7)
        var c = TorchRandomSource(seed: 8)
        let x = a.normalFloats(count: 40)
        #expect(x == b.normalFloats(count: 40))
        #expect(x != c.normalFloats(count: 40))
    }
}
