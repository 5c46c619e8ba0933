import Foundation

/// The arithmetic of image-to-image that does not touch a model (docs/contracts.md,
/// image-to-image; diffusers' StableDiffusionImg2ImgPipeline): where the sampler starts for a
/// strength, and the VAE posterior sample.
public enum ImageToImage {
    /// The first sampler call for `steps` steps at `strength` (diffusers' `get_timesteps`):
    /// `init = min(int(steps * strength), steps)`, `begin = max(steps - init, 0)` (every sampler
    /// here has order 1).
    /// - Throws: `PipelineError.strengthOutOfRange` outside (0, 1], `.noStepsLeft` when
    ///   `int(steps * strength)` is 0.
    public static func beginIndex(steps: Int, strength: Double) throws -> Int {
        guard strength > 0, strength <= 1 else { throw PipelineError.strengthOutOfRange(strength) }
        let initSteps = min(Int(Double(steps) * strength), steps)
        let begin = max(steps - initSteps, 0)
        guard steps - begin >= 1 else { throw PipelineError.noStepsLeft(strength: strength, steps: steps) }
        return begin
    }

    /// The image latent from the encoder's posterior moments `(1, 2C, h, w)` (mean, then
    /// log-variance) and standard normal `noise` `(1, C, h, w)`: diffusers'
    /// `DiagonalGaussianDistribution.sample` times the VAE scale factor, in float32:
    /// `(mean + exp(0.5 clamp(logvar, -30, 20)) n) * scaleFactor`.
    public static func posteriorSample(moments: Tensor, noise: Tensor, scaleFactor: Double) throws -> Tensor {
        let shape = noise.shape
        guard shape.count == 4, moments.shape == [shape[0], 2 * shape[1], shape[2], shape[3]], shape[0] == 1 else {
            throw PipelineError.unexpectedShape(what: "encoder latent",
                                                expected: shape.count == 4 ? [1, 2 * shape[1], shape[2], shape[3]] : shape,
                                                got: moments.shape)
        }
        let half = noise.count
        let factor = Float(scaleFactor)
        var out = noise
        for i in 0..<half {
            let logvar = min(max(moments.scalars[half + i], -30), 20)
            let std = exp(0.5 * logvar)
            out.scalars[i] = (moments.scalars[i] + std * noise.scalars[i]) * factor
        }
        return out
    }
}

extension RGBImage {
    /// Whether this platform resizes starting images of another size (Core Graphics).
    public static var canResize: Bool {
        #if canImport(CoreGraphics)
        return true
        #else
        return false
        #endif
    }

    /// Throws `PipelineError.initImageSize` when `prepared(for: size)` would (without resizing anything).
    public func checkPreparable(for size: PipelineDescription.ImageSize) throws {
        guard self.size == size || Self.canResize else { throw PipelineError.initImageSize(expected: size, got: self.size) }
    }

    /// This image at `size`: itself when it has that size; on Apple platforms otherwise
    /// center-cropped to the aspect ratio of `size` and resized with Core Graphics (high-quality
    /// interpolation).
    /// - Throws: `PipelineError.initImageSize` for another size where Core Graphics is missing (Linux).
    public func prepared(for size: PipelineDescription.ImageSize) throws -> RGBImage {
        if width == size.width, height == size.height { return self }
        #if canImport(CoreGraphics)
        return try resizedWithCoreGraphics(to: size)
        #else
        throw PipelineError.initImageSize(expected: size, got: self.size)
        #endif
    }
}
