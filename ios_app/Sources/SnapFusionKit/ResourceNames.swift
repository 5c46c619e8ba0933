/// The one place that owns the file and tensor names of a converted folder
/// (docs/contracts.md section 1, Apple-compatible).
public enum ResourceNames {
    public static let pipeline = "pipeline.json"
    public static let textEncoderInput = "input_ids"
    public static let textEncoderOutput = "last_hidden_state"
    public static let unetSample = "sample"
    public static let unetTimestep = "timestep"
    public static let unetHiddenStates = "encoder_hidden_states"
    /// The guidance embedding input of guidance-distilled UNets (`guidance.embedding.input`).
    public static let unetTimestepCond = "timestep_cond"
    public static let unetOutput = "noise_pred"
    public static let decoderInput = "z"
    public static let decoderOutput = "image"
    /// The VAE encoder's image input (1, 3, H, W) in [-1, 1] (format_version 3, Apple's name).
    public static let encoderInput = "z"
    /// The VAE encoder's output (1, 2C, h, w): posterior mean, then log-variance.
    public static let encoderOutput = "latent"
}
