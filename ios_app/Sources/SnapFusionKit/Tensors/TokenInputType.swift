/// The element type the text encoder takes its token ids in.
///
/// Folders converted by this project before version 0.2 declare `input_ids` int32; newer ones
/// and Apple's ml-stable-diffusion declare float32 (every CLIP id, at most 49407, is exact in
/// float32). Backends read the declaration (Core ML: the model description; the interpreter:
/// pipeline.json's `inputs`) so both kinds of folder work.
public enum TokenInputType: String, Sendable {
    case int32, float32

    /// float32 when the model declares float32, else int32 (also when it declares nothing).
    public init(declared: ScalarType?) {
        self = declared == .float32 ? .float32 : .int32
    }

    /// From a dtype string of pipeline.json (`"float32"`, `"int32"`; anything else is int32).
    public init(dtype: String?) {
        self.init(declared: dtype.flatMap(ScalarType.init(rawValue:)))
    }
}
