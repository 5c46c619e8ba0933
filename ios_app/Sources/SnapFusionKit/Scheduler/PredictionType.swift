/// What the UNet predicts.
public enum PredictionType: String, Codable, Sendable {
    /// v = alpha_t * eps - sigma_t * x (SnapFusion's distilled models).
    case vPrediction = "v_prediction"
    /// The added noise eps (Stable Diffusion 1.x).
    case epsilon
}
