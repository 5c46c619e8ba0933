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
}
