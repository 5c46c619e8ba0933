/// The one place that owns the file and tensor names of a converted folder
/// (docs/contracts.md section 1, Apple-compatible).
public enum ResourceNames {
    public static let pipeline = "pipeline.json"
    public static let textEncoderInput = "input_ids"
    public static let textEncoderOutput = "last_hidden_state"
    public static let unetSample = "sample"
    public static let unetTimestep = "timestep"
    public static let unetHiddenStates = "encoder_hidden_states"
    public static let unetOutput = "noise_pred"
    public static let decoderInput = "z"
    public static let decoderOutput = "image"
}
