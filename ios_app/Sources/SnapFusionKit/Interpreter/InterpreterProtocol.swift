import Foundation

/// The byte stream to a `snapfusion-coreml interpret OUT` server (a child process's stdin and
/// stdout in snapfusion-cli, an in-memory server in the tests).
public protocol InterpreterChannel: AnyObject, Sendable {
    /// Sends `bytes` completely.
    func write(_ bytes: [UInt8]) throws
    /// The bytes up to the next "\n" (not included); throws when the stream ends first.
    func readLine() throws -> [UInt8]
    /// Exactly `count` bytes; throws when the stream ends first.
    func read(count: Int) throws -> [UInt8]
}

/// The tensor protocol of docs/contracts.md ("Running converted packages through the Python
/// interpreter"): one JSON line plus raw little-endian C-order bytes per request and response.
public enum InterpreterProtocol {
    /// One named tensor on the wire.
    public struct Payload: Equatable, Sendable {
        public var name: String
        /// "float32" or "int32".
        public var dtype: String
        public var shape: [Int]
        /// `shape.product * 4` bytes.
        public var bytes: [UInt8]

        /// A float32 payload of `tensor`.
        public init(name: String, float32 tensor: Tensor) {
            self.init(name: name, dtype: "float32", shape: tensor.shape, bytes: tensor.float32Bytes)
        }

        /// An int32 payload.
        public init(name: String, int32 values: [Int32], shape: [Int]) {
            var bytes = [UInt8]()
            bytes.reserveCapacity(values.count * 4)
            for value in values { withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) } }
            self.init(name: name, dtype: "int32", shape: shape, bytes: bytes)
        }

        /// A payload from parts (already encoded bytes).
        public init(name: String, dtype: String, shape: [Int], bytes: [UInt8]) {
            self.name = name
            self.dtype = dtype
            self.shape = shape
            self.bytes = bytes
        }

        /// The values as a float32 tensor (int32 payloads converted).
        public func tensor() throws -> Tensor {
            guard let type = ScalarType(rawValue: dtype), type == .float32 || type == .int32 else {
                throw InterpreterError.malformedResponse("expected dtype float32 or int32 for \"\(name)\", got \"\(dtype)\"")
            }
            return try bytes.withUnsafeBytes { try Tensor(shape: shape, scalarType: type, bytes: $0) }
        }
    }

    private struct Header: Codable {
        struct Entry: Codable {
            var name: String
            var dtype: String
            var shape: [Int]
        }

        var component: String?
        /// The package function to run (folders with `sizes`); omitted: the package's default function.
        var function: String?
        var inputs: [Entry]?
        var outputs: [Entry]?
        var error: String?
    }

    /// The request bytes: the JSON line, then each input's bytes in order. `function` names the
    /// package function to run (the optional `"function"` field, for folders with `sizes`); nil
    /// leaves it out and the server runs the package's default function.
    public static func request(component: PipelineDescription.ComponentName, function: String? = nil,
                               inputs: [Payload]) throws -> [UInt8] {
        let header = Header(component: component.rawValue, function: function,
                            inputs: inputs.map { .init(name: $0.name, dtype: $0.dtype, shape: $0.shape) })
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var bytes = Array(try encoder.encode(header)) + [0x0A]
        for input in inputs { bytes += input.bytes }
        return bytes
    }

    /// Sends one request and reads its response from `channel`.
    ///
    /// - Throws: `InterpreterError.server` for an error response, `.malformedResponse` when the
    ///   answer breaks the protocol.
    public static func call(_ channel: any InterpreterChannel, component: PipelineDescription.ComponentName,
                            function: String? = nil, inputs: [Payload]) throws -> [Payload] {
        try channel.write(try request(component: component, function: function, inputs: inputs))
        let line = try channel.readLine()
        let header: Header
        do {
            header = try JSONDecoder().decode(Header.self, from: Data(line))
        } catch {
            let text = String(decoding: line.prefix(200), as: UTF8.self)
            throw InterpreterError.malformedResponse("expected a JSON line with \"outputs\" or \"error\", got \(text.debugDescription)")
        }
        if let message = header.error { throw InterpreterError.server(component: component.rawValue, message: message) }
        guard let outputs = header.outputs else {
            throw InterpreterError.malformedResponse("expected \"outputs\" or \"error\" in the response to \(component.rawValue)")
        }
        return try outputs.map { entry in
            guard entry.shape.allSatisfy({ $0 >= 0 }) else {
                throw InterpreterError.malformedResponse("expected a non-negative shape for \"\(entry.name)\", got \(entry.shape)")
            }
            return Payload(name: entry.name, dtype: entry.dtype, shape: entry.shape,
                           bytes: try channel.read(count: entry.shape.reduce(1, *) * 4))
        }
    }
}

/// Errors talking to the interpreter server.
public enum InterpreterError: LocalizedError, Equatable {
    /// The server answered `{"error": message}`.
    case server(component: String, message: String)
    case malformedResponse(String)
    case missingOutput(String, component: String)
    /// The server's stdout ended (it exited or crashed); `detail` says how.
    case closed(String)

    public var errorDescription: String? {
        switch self {
        case let .server(component, message):
            return "the interpreter could not run \(component): \(message)"
        case let .malformedResponse(reason):
            return "malformed interpreter response: \(reason)"
        case let .missingOutput(name, component):
            return "expected \(component) to return \"\(name)\" from the interpreter"
        case let .closed(detail):
            return "the interpreter stopped answering: \(detail)"
        }
    }
}
