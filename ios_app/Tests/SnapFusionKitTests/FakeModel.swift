import Foundation
@testable import SnapFusionKit

/// The fake models of tests/golden/make_golden.py, implemented identically:
/// - UNet: `float32((0.3 + 0.4 * t / 1000) * z + 0.05 * c / (1 + z * z))` in float64, where c is
///   the conditioning scalar carried by the hidden states;
/// - text encoder: hidden states filled with c = (prompt tokens without start/end/padding) / 10;
/// - decoder: `tanh(z / 4)` per latent channel 0...2, upsampled 8x (any [-1, 1] image works).
enum FakeModel {
    static func unet(_ z: Float, t: Int, c: Double) -> Float {
        unet(z, t: Double(t), c: c)
    }

    /// The same at a fractional timestep (Euler's float timesteps; tests/golden/make_sampler_golden.py).
    static func unet(_ z: Float, t: Double, c: Double) -> Float {
        let z64 = Double(z)
        return Float((0.3 + 0.4 * t / 1000) * z64 + 0.05 * c / (1 + z64 * z64))
    }

    /// A fake VAE encoder: moments `(1, 8, H/8, W/8)`, mean channel k the 8x8 block average of
    /// image channel k % 3, log-variance -4 everywhere.
    static func encoderMoments(_ image: Tensor) -> Tensor {
        let (h, w) = (image.shape[2] / 8, image.shape[3] / 8)
        var out = Tensor(repeating: -4, shape: [1, 8, h, w])
        for k in 0..<4 {
            for y in 0..<h {
                for x in 0..<w {
                    var sum: Float = 0
                    for dy in 0..<8 {
                        for dx in 0..<8 { sum += image.scalars[((k % 3) * h * 8 + y * 8 + dy) * w * 8 + x * 8 + dx] }
                    }
                    out.scalars[(k * h + y) * w + x] = sum / 64
                }
            }
        }
        return out
    }

    static func condition(tokenIDs: [Int32], bos: Int32 = 49406, eos: Int32 = 49407) -> Double {
        Double(tokenIDs.prefix { $0 != eos }.filter { $0 != bos }.count) / 10
    }
}

/// A `DiffusionBackend` running `FakeModel`, counting calls and advancing an optional fake clock
/// by fixed costs so timings are deterministic. Each test drives it from one task at a time.
///
/// `poisoned` components return NaN in their first value (an fp16 overflow on the Neural
/// Engine) until `fallBackToCPUAndGPU` moved them, if `canFallBack` allows it.
final class FakeBackend: ComputeUnitFallback, ComputeUnitReporting, @unchecked Sendable {
    let hiddenSize: Int
    var clock: FakeClock?
    var costs = (load: 120.0, textEncoder: 4.0, unetPerSample: 115.0, decoder: 116.0)
    private(set) var loads = 0
    private(set) var unloads = 0
    private(set) var unetBatches: [Int] = []
    /// The `timestep_cond` of every UNet call (nil where none was given).
    private(set) var timestepConds: [Tensor?] = []
    /// The `sample` input of every UNet call.
    private(set) var unetSamples: [Tensor] = []
    /// The `timestep` input of every UNet call.
    private(set) var unetTimesteps: [[Float]] = []
    private(set) var isLoaded = false
    /// Makes UNet and decoder costs vary from call to call (deterministically), so summaries
    /// of the golden benchmark have distinct p50 and p95.
    var jitter = false
    private var decodes = 0
    /// Called before each UNet call (used to cancel mid-generation).
    var onPredict: (() -> Void)?
    /// Components whose outputs hold NaN, and from which UNet call on (1-based; 1 for all).
    var poisoned: [PipelineDescription.ComponentName: Int] = [:]
    var canFallBack = false
    private(set) var fellBack: [PipelineDescription.ComponentName] = []
    private(set) var decodeCalls = 0

    /// What the models start on (a fallback moves a component to `.cpuAndGPU`).
    var computeUnits = ComputeUnits.cpuAndNeuralEngine

    func computeUnitsInUse(_ component: PipelineDescription.ComponentName) -> ComputeUnits? {
        fellBack.contains(component) ? .cpuAndGPU : computeUnits
    }

    func fallBackToCPUAndGPU(_ component: PipelineDescription.ComponentName) throws -> Bool {
        guard canFallBack, !fellBack.contains(component) else { return false }
        fellBack.append(component)
        return true
    }

    private func poison(_ tensor: Tensor, _ component: PipelineDescription.ComponentName, call: Int) -> Tensor {
        guard let from = poisoned[component], call >= from, !fellBack.contains(component) else { return tensor }
        var out = tensor
        out.scalars[0] = .nan
        return out
    }

    init(hiddenSize: Int = 8, clock: FakeClock? = nil) {
        self.hiddenSize = hiddenSize
        self.clock = clock
    }

    /// Loads when not loaded (a no-op otherwise, like the real backends).
    func load() throws {
        guard !isLoaded else { return }
        loads += 1
        // The first load of the process pays compilation, later ones do not.
        clock?.advance(loads == 1 ? costs.load * 10 : costs.load)
        isLoaded = true
    }

    func unload() {
        unloads += 1
        isLoaded = false
    }

    func encodeText(tokenIDs: [Int32]) throws -> Tensor {
        clock?.advance(costs.textEncoder)
        let c = Float(FakeModel.condition(tokenIDs: tokenIDs))
        return poison(Tensor(repeating: c, shape: [1, tokenIDs.count, hiddenSize]), .textEncoder, call: 1)
    }

    func predictNoise(sample: Tensor, timestep: [Float], encoderHiddenStates: Tensor, timestepCond: Tensor?) throws -> Tensor {
        onPredict?()
        timestepConds.append(timestepCond)
        unetTimesteps.append(timestep)
        unetSamples.append(sample)
        let extra = jitter ? Double(unetBatches.count % 4) * 1.5 + Double(unetBatches.count % 7) * 0.25 : 0
        clock?.advance((costs.unetPerSample + extra) * Double(sample.batch))
        unetBatches.append(sample.batch)
        precondition(encoderHiddenStates.shape == [sample.batch, hiddenSize, 1, 77], "UNet layout (B, D, 1, 77)")
        var out = sample
        let perItem = sample.count / sample.batch
        let hiddenPerItem = encoderHiddenStates.count / sample.batch
        for b in 0..<sample.batch {
            let c = Double(encoderHiddenStates.scalars[b * hiddenPerItem])
            for i in (b * perItem)..<((b + 1) * perItem) {
                out.scalars[i] = FakeModel.unet(sample.scalars[i], t: Double(timestep[b]), c: c)
            }
        }
        return poison(out, .unet, call: unetBatches.count)
    }

    /// What the fake VAE encoder returns; nil: the fake of `FakeModel.encoderMoments`.
    var encoderMoments: Tensor?
    /// The image of every encoder call.
    private(set) var encodedImages: [Tensor] = []

    func encodeImage(_ image: Tensor) throws -> Tensor {
        precondition(image.shape.count == 4 && image.shape[0] == 1 && image.shape[1] == 3, "encoder input (1, 3, H, W)")
        encodedImages.append(image)
        return poison(encoderMoments ?? FakeModel.encoderMoments(image), .encoder, call: encodedImages.count)
    }

    func decode(latents: Tensor) throws -> Tensor {
        clock?.advance(costs.decoder + (jitter ? Double(decodes % 3) * 2 : 0))
        decodes += 1
        decodeCalls += 1
        let (h, w) = (latents.shape[2], latents.shape[3])
        var image = Tensor(repeating: 0, shape: [1, 3, h * 8, w * 8])
        for channel in 0..<3 {
            for y in 0..<(h * 8) {
                for x in 0..<(w * 8) {
                    let z = latents.scalars[(channel * h + y / 8) * w + x / 8]
                    image.scalars[(channel * h * 8 + y) * w * 8 + x] = Float(tanh(Double(z) / 4))
                }
            }
        }
        return poison(image, .decoder, call: 1)
    }
}

/// A clock that only moves when told to (driven by one test at a time).
final class FakeClock: MillisecondClock, @unchecked Sendable {
    private(set) var time = 0.0

    func now() -> Double { time }

    func advance(_ milliseconds: Double) { time += milliseconds }
}

/// A process footprint that follows `readings` (one value per `currentBytes()` call, the last
/// one repeated), or grows by `step` bytes at every reading; the peak is the largest reading.
final class FakeMemoryProbe: MemoryProbe, @unchecked Sendable {
    private let lock = NSLock()
    private var bytes: Int64 = 1_200_000_000
    private var step: Int64 = 0
    private var readings: [Int64] = []
    private var peak: Int64 = 0
    private(set) var count = 0

    init(step: Int64 = 0) { self.step = step }

    init(readings: [Int64]) { self.readings = readings }

    func currentBytes() -> Int64? {
        lock.lock()
        defer { lock.unlock() }
        let value: Int64
        if readings.isEmpty {
            value = bytes
            bytes += step
        } else {
            value = readings[min(count, readings.count - 1)]
        }
        count += 1
        peak = max(peak, value)
        return value
    }

    func peakBytes() -> Int64? {
        lock.lock()
        defer { lock.unlock() }
        return peak
    }
}

/// A thermal state that cools one level per second of `sleep` (see `BenchmarkTests`).
final class FakeThermalProbe: ThermalProbe, @unchecked Sendable {
    private let lock = NSLock()
    private var current: ThermalState
    private(set) var readings = 0

    init(_ state: ThermalState) { current = state }

    func state() -> ThermalState {
        lock.lock()
        defer { lock.unlock() }
        readings += 1
        return current
    }

    func set(_ state: ThermalState) {
        lock.lock()
        current = state
        lock.unlock()
    }

    /// One level cooler (nominal stays nominal).
    func cool() {
        lock.lock()
        switch current {
        case .critical: current = .serious
        case .serious: current = .fair
        case .fair, .nominal, .unavailable: current = .nominal
        }
        lock.unlock()
    }
}
