import Foundation

/// How `steps` sampling timesteps are picked from the training timesteps
/// (`snapfusion_coreml.schedule.timesteps`, noisiest first).
public enum TimestepSpacing: String, Codable, Sendable {
    /// `round(arange(N, 0, -N / steps)) - 1`: starts at N - 1 (999, 874, ... for 8 steps).
    case trailing
    /// `arange(0, steps) * (N // steps)` reversed, plus `steps_offset`.
    case leading
    /// `round(linspace(0, N - 1, steps))` reversed.
    case linspace

    /// The timesteps for `steps` sampling steps out of `numTrainTimesteps`, noisiest first.
    ///
    /// Rounding is numpy's (half to even). For trailing spacing exactly `steps` values are
    /// returned; numpy's float `arange` can produce one extra value (e.g. 61 steps of 1000),
    /// which is never part of the result here.
    public func timesteps(steps: Int, numTrainTimesteps: Int = 1000, stepsOffset: Int = 0) throws -> [Int] {
        let n = numTrainTimesteps
        guard (1...max(n, 1)).contains(steps) else { throw SamplerError.invalidStepCount(steps, maximum: n) }
        switch self {
        case .trailing:
            // numpy arange(start, stop, step) computes start + i * (start + step - start).
            let step = -Double(n) / Double(steps)
            let delta = (Double(n) + step) - Double(n)
            return (0..<steps).map { Int((Double(n) + Double($0) * delta).rounded(.toNearestOrEven)) - 1 }
        case .leading:
            let ratio = n / steps
            return (0..<steps).reversed().map { $0 * ratio + stepsOffset }
        case .linspace:
            return NoiseSchedule.linspace(0, Double(n - 1), steps).reversed().map { Int($0.rounded(.toNearestOrEven)) }
        }
    }
}
