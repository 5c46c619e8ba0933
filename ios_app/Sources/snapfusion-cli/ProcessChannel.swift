import Foundation
import SnapFusionKit
#if canImport(Darwin)
import Darwin
#elseif canImport(Glibc)
import Glibc
#endif

/// The interpreter server as a child process: `<python command> interpret FOLDER --precision P`
/// run by `/bin/sh` (so the command may be `python -m snapfusion_coreml` or a path with
/// arguments); requests go to its stdin, responses come from its stdout, its stderr passes
/// through. Closing stdin ends it.
final class ProcessChannel: InterpreterChannel, @unchecked Sendable {
    private let process = Process()
    private let input = Pipe()
    private let output = Pipe()
    private var buffer: [UInt8] = []
    private var start = 0

    /// Starts the server for `folder`.
    init(pythonCommand: String, folder: URL, precision: String) throws {
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        // The folder and precision are positional parameters, never parsed by the shell.
        process.arguments = ["-c", "exec \(pythonCommand) interpret \"$1\" --precision \"$2\"", "sh", folder.path, precision]
        process.standardInput = input
        process.standardOutput = output
        process.standardError = FileHandle.standardError
        // A server that exits early closes its stdin: writing must fail with EPIPE, not kill us.
        signal(SIGPIPE, SIG_IGN)
        do {
            try process.run()
        } catch {
            throw InterpreterError.closed("could not start \(pythonCommand.debugDescription): \(error.localizedDescription)")
        }
    }

    func write(_ bytes: [UInt8]) throws {
        guard process.isRunning else { throw closed() }
        do {
            try input.fileHandleForWriting.write(contentsOf: Data(bytes))
        } catch {
            throw closed()
        }
    }

    func readLine() throws -> [UInt8] {
        while true {
            if let newline = buffer[start...].firstIndex(of: 0x0A) {
                let line = Array(buffer[start..<newline])
                start = newline + 1
                return line
            }
            try fill()
        }
    }

    func read(count: Int) throws -> [UInt8] {
        while buffer.count - start < count { try fill() }
        let bytes = Array(buffer[start..<(start + count)])
        start += count
        return bytes
    }

    /// Closes the server's stdin and waits for it to exit; returns its status.
    @discardableResult
    func close() -> Int32 {
        try? input.fileHandleForWriting.close()
        process.waitUntilExit()
        return process.terminationStatus
    }

    private func fill() throws {
        if start > 0 {
            buffer.removeFirst(start)
            start = 0
        }
        // One read(2): whatever the server has written so far (FileHandle.read(upToCount:) waits
        // for the full count on Linux, which would deadlock on a short response).
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        let descriptor = output.fileHandleForReading.fileDescriptor
        var count: Int
        repeat {
            count = chunk.withUnsafeMutableBytes { systemRead(descriptor, $0.baseAddress, $0.count) }
        } while count < 0 && errno == EINTR
        guard count > 0 else { throw closed() }
        buffer += chunk[..<count]
    }

    private func systemRead(_ descriptor: Int32, _ buffer: UnsafeMutableRawPointer?, _ count: Int) -> Int {
        #if canImport(Darwin)
        return Darwin.read(descriptor, buffer, count)
        #else
        return Glibc.read(descriptor, buffer, count)
        #endif
    }

    private func closed() -> InterpreterError {
        if process.isRunning { return .closed("its output ended early") }
        return .closed("the server exited with status \(process.terminationStatus) (its messages are above)")
    }
}
