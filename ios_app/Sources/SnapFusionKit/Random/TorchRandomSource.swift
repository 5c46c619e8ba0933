import Foundation

/// Reproduces `torch.randn(shape, generator=torch.Generator("cpu").manual_seed(seed))` in float32:
/// the random bits exactly, the values to float32 rounding (max |difference| 7.6e-7 at 1x4x64x64
/// and 1x4x96x64, about a third bit-identical). Tensors of 16 or more values go through torch's
/// float Box-Muller, whose log/cos/sin come from the CPU kernel torch selects at run time
/// (vectorised on AVX2 machines); this port evaluates the transform in double and rounds.
///
/// A port of the algorithm of Apple's ml-stable-diffusion `TorchRandomSource.swift` (MIT), which
/// follows PyTorch's CPU generator:
/// - mt19937 seeded with the low 32 bits of the seed (`at::mt19937`, aten/src/ATen/core/MT19937RNGEngine.h);
/// - float32 tensors with at least 16 elements (`normal_fill`, aten/src/ATen/native/cpu/DistributionTemplates.h):
///   fill every element with a 24-bit uniform, then Box-Muller in blocks of 16 (element j and
///   j + 8 of a block form a pair); when the count is not a multiple of 16, the last 16 elements
///   are redrawn as uniforms and transformed again;
/// - fewer than 16 elements: one scalar `normal_distribution<double>` per element (53-bit uniforms,
///   Box-Muller in double, the second value of each pair cached for the next element).
///
/// Unlike Apple's port, the redrawn tail uses 24-bit float uniforms, as `normal_fill` does;
/// tests/golden/random.json pins the output against PyTorch for every path and for sampled
/// values of real latent shapes.
public struct TorchRandomSource: Sendable {
    private var key = [UInt32](repeating: 0, count: 624)
    private var position = 624
    private var cachedNormal: Double?

    /// A generator in the state of `torch.Generator("cpu").manual_seed(seed)`.
    public init(seed: UInt64) {
        var s = UInt32(truncatingIfNeeded: seed)
        for i in 0..<624 {
            key[i] = s
            s = UInt32(truncatingIfNeeded: UInt64(1_812_433_253) * UInt64(s ^ (s >> 30)) + UInt64(i) + 1)
        }
    }

    /// The next 32 random bits (mt19937 with tempering).
    public mutating func nextUInt32() -> UInt32 {
        let (n, m) = (624, 397)
        if position == n {
            for i in 0..<n {
                let y = (key[i] & 0x8000_0000) | (key[(i + 1) % n] & 0x7FFF_FFFF)
                key[i] = key[(i + m) % n] ^ (y >> 1) ^ ((y & 1) == 0 ? 0 : 0x9908_B0DF)
            }
            position = 0
        }
        var y = key[position]
        position += 1
        y ^= y >> 11
        y ^= (y << 7) & 0x9D2C_5680
        y ^= (y << 15) & 0xEFC6_0000
        y ^= y >> 18
        return y
    }

    /// 64 random bits: the first 32-bit draw is the high half (`random64()`).
    public mutating func nextUInt64() -> UInt64 {
        let high = UInt64(nextUInt32())
        return (high << 32) | UInt64(nextUInt32())
    }

    /// Uniform in [0, 1) with 53 random bits (`uniform_real_distribution<double>`).
    public mutating func nextDouble() -> Double {
        Double(nextUInt64() & ((1 << 53) - 1)) * 0x1p-53
    }

    /// Uniform in [0, 1) with 24 random bits (`uniform_real_distribution<float>`).
    public mutating func nextFloat() -> Float {
        Float(nextUInt32() & ((1 << 24) - 1)) * 0x1p-24
    }

    /// One standard normal sample (`normal_distribution<double>`).
    public mutating func nextNormal() -> Double {
        if let cached = cachedNormal {
            cachedNormal = nil
            return cached
        }
        let u1 = nextDouble()
        let u2 = nextDouble()
        let radius = (-2.0 * log1p(-u2)).squareRoot()
        let theta = 2.0 * Double.pi * u1
        cachedNormal = radius * sin(theta)
        return radius * cos(theta)
    }

    /// `count` standard normal float32 values, as `torch.randn` fills a contiguous tensor.
    public mutating func normalFloats(count: Int) -> [Float] {
        guard count >= 16 else {
            return (0..<count).map { _ in Float(nextNormal()) }
        }
        var data = (0..<count).map { _ in nextFloat() }
        for start in stride(from: 0, to: count - 15, by: 16) {
            Self.boxMuller16(&data, at: start)
        }
        if count % 16 != 0 {
            let start = count - 16
            for i in start..<count { data[i] = nextFloat() }
            Self.boxMuller16(&data, at: start)
        }
        return data
    }

    /// A tensor of standard normal values: `torch.randn(shape, generator=...)`.
    public mutating func normalTensor(shape: [Int]) -> Tensor {
        Tensor(validShape: shape, scalars: normalFloats(count: shape.reduce(1, *)))
    }

    /// Box-Muller over 16 uniforms: element j and j + 8 become cos and sin of one pair.
    /// Computed in double and rounded to float; PyTorch's float kernels agree to about 1 ulp.
    private static func boxMuller16(_ data: inout [Float], at start: Int) {
        for j in 0..<8 {
            let u1 = 1 - Double(data[start + j])
            let u2 = Double(data[start + j + 8])
            let radius = (-2.0 * log(u1)).squareRoot()
            let theta = 2.0 * Double.pi * u2
            data[start + j] = Float(radius * cos(theta))
            data[start + j + 8] = Float(radius * sin(theta))
        }
    }
}
