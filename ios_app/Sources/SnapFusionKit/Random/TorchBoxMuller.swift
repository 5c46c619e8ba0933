/// The float Box-Muller transform `torch.randn` applies to tensors of 16 or more float32 values
/// on x86-64 CPUs with AVX2 (`normal_fill_16_AVX2`, aten/src/ATen/native/cpu/DistributionTemplates.h),
/// reproduced operation for operation so the result is bit-identical on every platform.
///
/// That kernel does not call libm: it uses the Cephes-derived polynomial `log256_ps` and
/// `sincos256_ps` of aten/src/ATen/native/cpu/avx_mathfun.h, and the released PyTorch builds
/// compile them with multiply-add contraction, so some multiply-then-add pairs are single fused
/// operations (one rounding). Each fused pair is written here as `addingProduct` (IEEE fused
/// multiply-add, the same on every CPU); every other operation is one float32 operation, which
/// Swift never contracts. tests/golden/random.json (written by PyTorch) pins the result.
enum TorchBoxMuller {
    /// `2 * pi` rounded to float32, as the kernel broadcasts it (`_mm256_set1_ps`).
    static let twoPi = Float(2 * Double.pi)

    /// Transforms 16 uniforms in place: for j in 0..<8, `u1 = 1 - data[j]`, `u2 = data[j + 8]`,
    /// radius `sqrt(-2 log u1)`, angle `2 pi u2`; `data[j]` gets the cosine and `data[j + 8]` the
    /// sine of the pair.
    static func transform16(_ data: inout [Float], at start: Int) {
        for j in 0..<8 {
            let u1 = 1 - data[start + j]  // [0, 1) -> (0, 1]
            let u2 = data[start + j + 8]
            let radius = (-2 * log(u1)).squareRoot()
            let (sine, cosine) = sincos(twoPi * u2)
            // The kernel stores fmadd(n, std = 1, mean = 0): n exactly, except -0 becomes +0.
            data[start + j] = radius * cosine + 0
            data[start + j + 8] = radius * sine + 0
        }
    }

    /// The Cephes log polynomial after its leading coefficient 7.0376836292E-2.
    private static let logCoefficients: [Float] = [-1.1514610310E-1, 1.1676998740E-1, -1.2420140846E-1, 1.4249322787E-1,
                                                   -1.6668057665E-1, 2.0000714765E-1, -2.4999993993E-1, 3.3333331174E-1]

    /// Natural logarithm of a positive float (`log256_ps`, one lane): `x = m * 2^e` with
    /// `m` in [sqrt(1/2), sqrt(2)), then a degree-9 polynomial in `m - 1` and `e * ln 2` in two parts.
    static func log(_ input: Float) -> Float {
        // 1. split exponent and mantissa (denormals are clamped to the smallest normal)
        let bits = max(input, Float(bitPattern: 0x0080_0000)).bitPattern
        var e = Float(Int32(bitPattern: bits >> 23) - 0x7F) + 1
        var x = Float(bitPattern: (bits & ~0x7F80_0000) | Float(0.5).bitPattern)  // in [0.5, 1)
        // 2. if x < sqrt(1/2): e -= 1, x = x + x - 1; else x = x - 1 (in the kernel's order)
        let below = x < 0.707106781186547524
        let doubled: Float = below ? x : 0
        x -= 1
        if below { e -= 1 }
        x += doubled
        // 3. polynomial, each step fused
        let z = x * x
        var y: Float = 7.0376836292E-2
        for coefficient in logCoefficients { y = coefficient.addingProduct(y, x) }
        y *= x
        // 4. y * z + e * q1 (the y * z product fused), - z / 2 (fused), + x, + e * q2 (fused)
        y = (e * -2.12194440E-4).addingProduct(y, z)
        y = y.addingProduct(z, -0.5)
        x += y
        return x.addingProduct(e, 0.693359375)
    }

    /// Sine and cosine of a float (`sincos256_ps`, one lane): reduction by multiples of pi / 4
    /// in three fused steps, then the Cephes sine or cosine polynomial for each octant.
    static func sincos(_ angle: Float) -> (sin: Float, cos: Float) {
        // 1. octant: j = (trunc(|x| * 4 / pi) + 1) & ~1, and the signs it implies
        var signSin = angle.bitPattern & 0x8000_0000
        var x = Float(bitPattern: angle.bitPattern & 0x7FFF_FFFF)
        var octant = Int32(x * 1.27323954473516)
        octant = (octant + 1) & ~1
        let y = Float(octant)
        signSin ^= UInt32(bitPattern: octant & 4) << 29
        let signCos = UInt32(bitPattern: ~(octant - 2) & 4) << 29
        let sinePolynomialForSine = (octant & 2) == 0
        // 2. extended-precision reduction x - y * pi / 4, pi / 4 in three parts
        x = x.addingProduct(y, -0.78515625)
        x = x.addingProduct(y, -2.4187564849853515625E-4)
        x = x.addingProduct(y, -3.77489497744594108E-8)
        // 3. cosine polynomial: ((c0 z + c1) z + c2) z * z - z / 2 + 1, the last multiply fused
        let z = x * x
        var c: Float = (-1.388731625493765E-3 as Float).addingProduct(2.443315711809948E-5, z)
        c = (4.166664568298827E-2 as Float).addingProduct(c, z)
        c *= z
        c = (-(z * 0.5)).addingProduct(c, z)
        c += 1
        // 4. sine polynomial: ((s0 z + s1) z + s2) z * x + x
        var s: Float = (8.3321608736E-3 as Float).addingProduct(-1.9515295891E-4, z)
        s = (-1.6666654611E-1 as Float).addingProduct(s, z)
        s *= z
        s = x.addingProduct(s, x)
        // 5. pick the polynomial per octant and apply the signs
        let (sine, cosine) = sinePolynomialForSine ? (s, c) : (c, s)
        return (Float(bitPattern: sine.bitPattern ^ signSin), Float(bitPattern: cosine.bitPattern ^ signCos))
    }
}
