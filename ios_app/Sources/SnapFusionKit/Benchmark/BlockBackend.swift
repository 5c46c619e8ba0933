import Foundation

/// One loaded single-block model that can be run on fixed inputs.
public protocol BlockPredictor: AnyObject {
    /// One prediction on the block's inputs (prepared once at load).
    func predict() throws
}

/// Loads single-block packages; Core ML on Apple platforms, a fake in tests.
public protocol BlockBackend: AnyObject {
    /// Loads `block` from `url` with inputs of the blocks manifest's shapes.
    func loadBlock(_ block: BlocksManifest.Block, at url: URL) throws -> BlockPredictor
}
