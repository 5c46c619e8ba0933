import Foundation

/// Reproduces `torch.randn(shape, generator=torch.Generator("cpu").manual_seed(seed))` in float32,
/// bit for bit with PyTorch on x86-64 CPUs with AVX2 (where Python generates reference noise in
/// this repository, measured on 1x4x64x64 and 1x4x96x64). PyTorch itself gives other last bits
/// where it picks its scalar kernel (ARM CPUs such as Apple-silicon Macs, x86 without AVX2: libm's
/// logf/cosf/sinf), up to about 1e-6 from these values.
///
/// The algorithm follows PyTorch's CPU generator (Apple's ml-stable-diffusion
/// `TorchRandomSource.swift`, MIT, ports the same algorithm with a double-precision transform):
/// - mt19937 seeded with the low 32 bits of the seed (`at::mt19937`, aten/src/ATen/core/MT19937RNGEngine.h);
/// - float32 tensors with at least 16 elements (`normal_fill_AVX2`, aten/src/ATen/native/cpu/DistributionTemplates.h):
///   fill every element with a 24-bit uniform, then Box-Muller in blocks of 16 (element j and
///   j + 8 of a block form a pair) with the kernel's own float polynomials (`TorchBoxMuller`);
///   when the count is not a multiple of 16, the last 16 elements are redrawn as uniforms and
///   transformed again;
/// - fewer than 16 elements: one scalar `normal_distribution<double>` per element (53-bit uniforms,
///   Box-Muller in double, the second value of each pair cached for the next element).
///
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
            TorchBoxMuller.transform16(&data, at: start)
        }
        if count % 16 != 0 {
            let start = count - 16
            for i in start..<count { data[i] = nextFloat() }
            TorchBoxMuller.transform16(&data, at: start)
        }
        return data
    }

    /// A tensor of standard normal values: `torch.randn(shape, generator=...)`.
    public mutating func normalTensor(shape: [Int]) -> Tensor {
        Tensor(validShape: shape, scalars: normalFloats(count: shape.reduce(1, *)))
    }
}
