import Foundation
import SnapFusionKit

/// `snapfusion-cli tokenize --resources DIR "PROMPT"`: the CLIP ids (tokenizer.max_length of them) as one JSON line.
enum TokenizeCommand: Command {
    static let name = "tokenize"
    static let summary = "print the CLIP token ids of a prompt as a JSON array (works everywhere)"
    static let help = """
    usage: snapfusion-cli tokenize --resources DIR PROMPT

    Prints the prompt's token ids (start token, BPE tokens, end token, padding; truncated and
    padded to the folder's tokenizer.max_length, CLIP's 77) as a JSON array on one line. Put `--` before a
    prompt that starts with "-".

    options:
      --resources DIR   a converted folder, or any folder with vocab.json and merges.txt;
                        pipeline.json's tokenizer section is used when present
      -h, --help        show this help
    """

    static func run(_ arguments: [String]) throws {
        let args = try Arguments(arguments, options: ["--resources"], flags: [])
        let folder = fileURL(try args.required("--resources"))
        guard args.positionals.count == 1, let prompt = args.positionals.first else {
            throw CLIError.usage("expected exactly one PROMPT argument, got \(args.positionals.count)")
        }
        let tokenizer: CLIPTokenizer
        if FileManager.default.fileExists(atPath: folder.appendingPathComponent(PipelineDescription.fileName).path) {
            tokenizer = try ConvertedFolder(url: folder, requiring: []).makeTokenizer()
        } else {
            tokenizer = try CLIPTokenizer(directory: folder)
        }
        let ids = tokenizer.encode(prompt)
        print("[" + ids.map(String.init).joined(separator: ", ") + "]")
    }
}
