import Foundation

/// JSON coding shared by the benchmark, latency-table and blocks manifest files (snake_case keys).
public enum ReportCoding {
    /// Pretty-printed, sorted keys, snake_case.
    public static func encoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        return encoder
    }

    /// snake_case keys.
    public static func decoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return decoder
    }

    /// Encodes `value` and writes it atomically, ending with a newline.
    public static func write<T: Encodable>(_ value: T, to url: URL) throws {
        var data = try encoder().encode(value)
        data.append(0x0A)
        try data.write(to: url, options: .atomic)
    }
}
