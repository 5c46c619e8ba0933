import Foundation

/// The guidance-scale embedding a guidance-distilled UNet (full LCM models) takes as
/// `timestep_cond` instead of running classifier-free guidance: diffusers'
/// `LatentConsistencyModelPipeline.get_guidance_scale_embedding(w - 1, dim)`
/// (diffusers/pipelines/latent_consistency_models/pipeline_latent_consistency_text2img.py),
/// computed in float32 as torch computes it (docs/contracts.md section 3).
public enum GuidanceEmbedding {
    /// `(1, dim)`: with `v = 1000 (w - 1)`, `half = dim / 2`, `f_k = exp(-k ln(10000) / (half - 1))`:
    /// `[sin(v f_0), ..., sin(v f_{half-1}), cos(v f_0), ..., cos(v f_{half-1})]`, a zero appended
    /// when `dim` is odd.
    public static func embedding(guidanceScale w: Double, dim: Int) -> Tensor {
        let half = dim / 2
        let v = Float(w - 1) * 1000
        let rate = Float(log(10000.0)) / Float(half - 1)
        var values = [Float](repeating: 0, count: dim)
        for k in 0..<half {
            // Each float32 operation rounded as torch rounds it, f_k the correctly rounded
            // float32 exp and sin/cos evaluated in float64 and rounded once. torch's own float exp
            // (MKL's vsExp in the x86-64 build the golden file came from) is one ulp off for about 1% of
            // arguments, and v f_k reaches 7500 at w = 8.5, so its sin/cos may differ from these
            // by up to |v f_k| 2^-23 (4e-4): a difference between torch builds as much as from
            // this code, and immaterial after the UNet's linear projection of the embedding.
            let exponent = Float(k) * -rate
            let frequency = Float(exp(Double(exponent)))
            let argument = v * frequency
            values[k] = Float(sin(Double(argument)))
            values[half + k] = Float(cos(Double(argument)))
        }
        return Tensor(validShape: [1, dim], scalars: values)
    }
}
