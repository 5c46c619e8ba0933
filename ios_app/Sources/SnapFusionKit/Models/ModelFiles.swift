import Foundation

/// Which file on disk runs a component: pipeline.json names the `.mlpackage`; a compiled
/// `.mlmodelc` of the same name next to it (compiled by Xcode, by `coremlcompiler`, or shipped
/// instead of the package) is preferred, because it loads without compiling.
public enum ModelFiles {
    /// The compiled-model name for `file`: `Unet.mlpackage` -> `Unet.mlmodelc`.
    public static func compiledName(of file: String) -> String {
        let url = URL(fileURLWithPath: file)
        guard url.pathExtension != "mlmodelc" else { return file }
        let stem = (file as NSString).deletingPathExtension
        return stem + ".mlmodelc"
    }

    /// The file to run for `file` (as named in pipeline.json) inside `folder`: the matching
    /// `.mlmodelc` if it exists, else `file` itself if it exists, else nil.
    public static func resolve(_ file: String, in folder: URL,
                               exists: (URL) -> Bool = { FileManager.default.fileExists(atPath: $0.path) }) -> URL? {
        let compiled = folder.appendingPathComponent(compiledName(of: file))
        if exists(compiled) { return compiled }
        let named = folder.appendingPathComponent(file)
        return exists(named) ? named : nil
    }
}
