import Foundation
import Testing
@testable import SnapFusionKit

struct SamplerGolden: Decodable {
    struct Spacing: Decodable, Sendable, CustomTestStringConvertible {
        var timestepSpacing: TimestepSpacing
        var stepsOffset: Int
        var steps: Int
        var numTrainTimesteps: Int
        var timesteps: [Int]
        var testDescription: String { "\(timestepSpacing.rawValue) offset \(stepsOffset) steps \(steps)" }
    }

    struct Trajectory: Decodable, Sendable, CustomTestStringConvertible {
        var predictionType: PredictionType
        var steps: Int
        var guidanceScale: Double
        var unetBatch: Int
        var seed: UInt64
        var timestepSpacing: TimestepSpacing
        var shape: [Int]
        var prompt: String
        var negativePrompt: String
        var condition: Double
        var uncondition: Double
        var timesteps: [Int]
        var latents: [[Float]]
        var testDescription: String {
            "\(predictionType.rawValue) \(steps) steps w=\(guidanceScale) batch \(unetBatch) seed \(seed) \(timestepSpacing.rawValue)"
        }
    }

    var alphasCumprod: [String: [String: Double]]
    var spacings: [Spacing]
    var trajectories: [Trajectory]
}

/// Largest |a - b| over two equally long arrays.
func maxAbsDifference(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count)
    return zip(a, b).map { abs($0 - $1) }.max() ?? 0
}

@Suite struct SamplerTests {
    static let golden = Result { try GoldenFiles.load(SamplerGolden.self, "sampler.json") }
    static let spacings = (try? golden.get().spacings) ?? []
    static let trajectories = (try? golden.get().trajectories) ?? []

    @Test func goldenFileIsComplete() throws {
        let golden = try Self.golden.get()
        #expect(golden.spacings.count >= 50)
        #expect(Set(golden.trajectories.map(\.predictionType)) == [.vPrediction, .epsilon])
        #expect(Set(golden.trajectories.map(\.unetBatch)) == [1, 2])
        #expect(golden.trajectories.contains { $0.guidanceScale == 1 } && golden.trajectories.contains { $0.guidanceScale > 1 })
    }

    @Test(arguments: ["scaled_linear", "linear"]) func alphasCumprodMatchNumpy(schedule name: String) throws {
        let expected = try #require(try Self.golden.get().alphasCumprod[name])
        let schedule = NoiseSchedule(betaSchedule: try #require(BetaSchedule(rawValue: name)))
        #expect(schedule.alphasCumprod.count == 1000)
        for (t, value) in expected {
            let got = schedule.alphaCumprod(at: try #require(Int(t)))
            #expect(abs(got - value) <= 1e-15 * value, "t=\(t): \(got) vs \(value)")
        }
        #expect(schedule.alphaCumprod(at: -1) == 1)
    }

    @Test(arguments: spacings) func timestepsMatchPython(item: SamplerGolden.Spacing) throws {
        let got = try item.timestepSpacing.timesteps(steps: item.steps, numTrainTimesteps: item.numTrainTimesteps,
                                                     stepsOffset: item.stepsOffset)
        #expect(got == item.timesteps)
    }

    @Test func trailingAlwaysGivesExactlyStepsTimesteps() throws {
        for steps in 1...1000 {
            let ts = try TimestepSpacing.trailing.timesteps(steps: steps)
            #expect(ts.count == steps && ts.first == 999 && (ts.last ?? -1) >= 0 && zip(ts, ts.dropFirst()).allSatisfy { $0 > $1 })
        }
    }

    @Test(arguments: [0, 1001]) func invalidStepCountsThrow(steps: Int) {
        #expect(throws: SamplerError.invalidStepCount(steps, maximum: 1000)) {
            try TimestepSpacing.trailing.timesteps(steps: steps)
        }
    }

    /// The sampler alone, driven by the fake model exactly as make_golden.py drives schedule.sample.
    @Test(arguments: trajectories) func samplerReproducesTrajectory(item: SamplerGolden.Trajectory) throws {
        let sampler = DDIMSampler(schedule: NoiseSchedule(), predictionType: item.predictionType, timesteps: item.timesteps)
        var z = try Tensor(shape: item.shape, scalars: item.latents[0])
        for (index, t) in item.timesteps.enumerated() {
            func model(_ c: Double) -> Tensor {
                var out = z
                for i in out.scalars.indices { out.scalars[i] = FakeModel.unet(z.scalars[i], t: t, c: c) }
                return out
            }
            var prediction = model(item.condition)
            if item.guidanceScale > 1 {
                prediction = try DDIMSampler.guide(conditional: prediction, unconditional: model(item.uncondition),
                                                   scale: Float(item.guidanceScale))
            }
            z = try sampler.step(modelOutput: prediction, sample: z, timestep: t,
                                 previousTimestep: sampler.previousTimestep(after: index)).previous
            let error = maxAbsDifference(z.scalars, item.latents[index + 1])
            #expect(error <= 1e-5, "step \(index) (t=\(t)): max |error| \(error)")
        }
    }

    @Test func vPredictionRoundTrip() throws {
        // With the true v, DDIM from t to the end returns x exactly (x = a z - s v).
        let schedule = NoiseSchedule()
        let (a, s) = schedule.alphaSigma(at: 499)
        let x: Float = 0.75, eps: Float = -1.25
        let z = Float(a * Double(x) + s * Double(eps))
        let v = Float(a * Double(eps) - s * Double(x))
        let sampler = DDIMSampler(schedule: schedule, predictionType: .vPrediction, timesteps: [499])
        let out = try sampler.step(modelOutput: try Tensor(shape: [1], scalars: [v]), sample: try Tensor(shape: [1], scalars: [z]),
                                   timestep: 499, previousTimestep: -1)
        #expect(abs(out.previous.scalars[0] - x) < 1e-6)
        #expect(out.previous == out.predictedOriginal)
    }

    @Test func guidanceFollowsDiffusersConvention() throws {
        let cond = try Tensor(shape: [2], scalars: [1, 2])
        let uncond = try Tensor(shape: [2], scalars: [0, 4])
        #expect(try DDIMSampler.guide(conditional: cond, unconditional: uncond, scale: 1).scalars == [1, 2])
        #expect(try DDIMSampler.guide(conditional: cond, unconditional: uncond, scale: 3).scalars == [3, -2])
    }
}
