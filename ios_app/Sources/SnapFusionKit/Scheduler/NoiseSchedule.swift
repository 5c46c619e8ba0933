import Foundation

/// How betas grow over the training timesteps.
public enum BetaSchedule: String, Codable, Sendable {
    /// `linspace(sqrt(beta_start), sqrt(beta_end), N) ** 2` (Stable Diffusion).
    case scaledLinear = "scaled_linear"
    /// `linspace(beta_start, beta_end, N)`.
    case linear
}

/// The variance-preserving noise schedule: `alpha_t = sqrt(ac[t])`, `sigma_t = sqrt(1 - ac[t])`.
///
/// Matches `snapfusion_coreml.schedule.alphas_cumprod` in float64, including numpy's
/// `linspace` arithmetic (`start + i * step`, last value exactly `stop`).
public struct NoiseSchedule: Sendable {
    /// `cumprod(1 - betas)`, one value per training timestep.
    public let alphasCumprod: [Double]
    /// The alpha_cumprod of "timestep -1", the end of sampling (1: the last step returns x).
    public let finalAlphaCumprod: Double

    /// Builds the schedule of `numTrainTimesteps` steps.
    public init(numTrainTimesteps: Int = 1000, betaStart: Double = 0.00085, betaEnd: Double = 0.012,
                betaSchedule: BetaSchedule = .scaledLinear, finalAlphaCumprod: Double = 1.0) {
        let betas: [Double]
        switch betaSchedule {
        case .scaledLinear:
            betas = Self.linspace(pow(betaStart, 0.5), pow(betaEnd, 0.5), numTrainTimesteps).map { $0 * $0 }
        case .linear:
            betas = Self.linspace(betaStart, betaEnd, numTrainTimesteps)
        }
        var product = 1.0
        alphasCumprod = betas.map { beta in
            product *= 1.0 - beta
            return product
        }
        self.finalAlphaCumprod = finalAlphaCumprod
    }

    /// alpha_cumprod at timestep `t`; a negative `t` is the end of sampling.
    public func alphaCumprod(at t: Int) -> Double {
        t < 0 ? finalAlphaCumprod : alphasCumprod[min(t, alphasCumprod.count - 1)]
    }

    /// `(alpha_t, sigma_t)` at timestep `t` (negative: the end of sampling).
    public func alphaSigma(at t: Int) -> (alpha: Double, sigma: Double) {
        let a2 = alphaCumprod(at: t)
        return (a2.squareRoot(), max(1.0 - a2, 0).squareRoot())
    }

    /// numpy.linspace(start, stop, count) with endpoint, in float64.
    static func linspace(_ start: Double, _ stop: Double, _ count: Int) -> [Double] {
        guard count > 1 else { return count == 1 ? [start] : [] }
        let step = (stop - start) / Double(count - 1)
        var values = (0..<count).map { Double($0) * step + start }
        values[count - 1] = stop
        return values
    }
}
