/// The two kinds of UNet block the latency tables and the blocks manifest name (Python:
/// `snapfusion_coreml.config.BLOCK_KINDS`).
public enum BlockKind: String, Codable, CaseIterable, Sendable {
    case resnet
    case transformer

    /// The module group of this kind inside a stage: `resnets` or `attentions`
    /// (diffusers' names, so `{stage}.{group}.{index}` is the block's module name).
    public var moduleGroup: String {
        switch self {
        case .resnet: return "resnets"
        case .transformer: return "attentions"
        }
    }
}
