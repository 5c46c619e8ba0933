import Foundation
import Testing
@testable import SnapFusionKit

/// An in-memory file system whose operations can be made to fail, to prove the cache never
/// publishes a partial entry. Paths are nodes with a modification date; a move renames a subtree.
final class MemoryFileSystem: CacheFileSystem, @unchecked Sendable {
    struct Failure: Error {}
    private let lock = NSLock()
    private(set) var nodes: [String: Date] = [:]
    var clock = Date(timeIntervalSince1970: 1_000_000)
    /// Fails the next operation named here ("move", "createDirectory") whose path contains `matching`.
    var failNext: (operation: String, matching: String)?

    private func check(_ operation: String, _ path: String) throws {
        if let fail = failNext, fail.operation == operation, path.contains(fail.matching) {
            failNext = nil
            throw Failure()
        }
    }

    private func locked<R>(_ body: () throws -> R) rethrows -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }

    /// Adds a file (and its parent folders) at `path`.
    func touch(_ path: String) {
        locked {
            var url = URL(fileURLWithPath: path)
            while url.path != "/" {
                if nodes[url.path] == nil { nodes[url.path] = clock }
                url = url.deletingLastPathComponent()
            }
        }
    }

    func exists(_ url: URL) -> Bool { locked { nodes[url.path] != nil } }

    func createDirectory(_ url: URL) throws {
        try check("createDirectory", url.path)
        touch(url.path)
    }

    func move(_ source: URL, to destination: URL) throws {
        try check("move", destination.path)
        try locked {
            guard nodes[source.path] != nil, nodes[destination.path] == nil else { throw Failure() }
            guard nodes[destination.deletingLastPathComponent().path] != nil else { throw Failure() }
            for (path, date) in nodes where path == source.path || path.hasPrefix(source.path + "/") {
                nodes[path] = nil
                nodes[destination.path + path.dropFirst(source.path.count)] = date
            }
        }
    }

    func remove(_ url: URL) throws {
        locked {
            for path in nodes.keys where path == url.path || path.hasPrefix(url.path + "/") { nodes[path] = nil }
        }
    }

    func contents(of url: URL) -> [String] {
        locked {
            nodes.keys.filter { URL(fileURLWithPath: $0).deletingLastPathComponent().path == url.path }
                .map { URL(fileURLWithPath: $0).lastPathComponent }.sorted()
        }
    }

    func modificationDate(of url: URL) -> Date? { locked { nodes[url.path] } }

    func setModificationDate(_ date: Date, of url: URL) throws {
        try locked {
            guard nodes[url.path] != nil else { throw Failure() }
            nodes[url.path] = date
        }
    }
}

@Suite struct CompiledModelStoreTests {
    static let sha = String(repeating: "ab", count: 32)
    static let otherSha = String(repeating: "cd", count: 32)
    static let cache = URL(fileURLWithPath: "/cache")
    static let package = URL(fileURLWithPath: "/models/Unet.mlpackage")

    /// A fake compiler: writes `/tmp/compiled-N/Unet.mlmodelc/model.mil` and counts calls.
    final class Compiler: @unchecked Sendable {
        let fs: MemoryFileSystem
        var calls = 0
        init(_ fs: MemoryFileSystem) { self.fs = fs }

        func compile(_ package: URL) throws -> URL {
            calls += 1
            let out = URL(fileURLWithPath: "/tmp/compiled-\(calls)/\(package.deletingPathExtension().lastPathComponent).mlmodelc")
            fs.touch(out.appendingPathComponent("model.mil").path)
            return out
        }
    }

    static func setUp(maxEntries: Int = 6) -> (CompiledModelStore, MemoryFileSystem, Compiler) {
        let fs = MemoryFileSystem()
        fs.touch(package.appendingPathComponent("Manifest.json").path)
        fs.touch(cache.path)
        let store = CompiledModelStore(directory: cache, maxEntries: maxEntries, fileSystem: fs, now: { [fs] in fs.clock })
        return (store, fs, Compiler(fs))
    }

    @Test func compilesOnceThenHits() throws {
        let (store, fs, compiler) = Self.setUp()
        let first = try store.compiledModel(for: Self.package, sha256: Self.sha, compile: compiler.compile)
        #expect(first.path == "/cache/Unet-\(Self.sha)/Unet.mlmodelc")
        #expect(fs.exists(first.appendingPathComponent("model.mil")))
        #expect(!fs.exists(URL(fileURLWithPath: "/tmp/compiled-1/Unet.mlmodelc")))
        let second = try store.compiledModel(for: Self.package, sha256: Self.sha, compile: compiler.compile)
        #expect(second == first && compiler.calls == 1)
        #expect(fs.contents(of: Self.cache) == ["Unet-\(Self.sha)"])  // no staging left behind
    }

    @Test func asyncCompilerUsesTheSameEntry() async throws {
        let (store, _, compiler) = Self.setUp()
        let url = try await store.compiledModel(for: Self.package, sha256: Self.sha) { package async throws in
            try compiler.compile(package)
        }
        #expect(store.lookup(Self.package, sha256: Self.sha) == url)
    }

    @Test(arguments: ["createDirectory", "move"]) func failureAtAnyStepLeavesNoEntry(operation: String) throws {
        let (store, fs, compiler) = Self.setUp()
        fs.failNext = (operation, operation == "move" ? "/cache/Unet-" : ".staging-")
        #expect(throws: MemoryFileSystem.Failure.self) {
            try store.compiledModel(for: Self.package, sha256: Self.sha, compile: compiler.compile)
        }
        #expect(store.lookup(Self.package, sha256: Self.sha) == nil)
        #expect(fs.contents(of: Self.cache).isEmpty, "left \(fs.contents(of: Self.cache))")
        // The next attempt compiles again and succeeds.
        _ = try store.compiledModel(for: Self.package, sha256: Self.sha, compile: compiler.compile)
        #expect(compiler.calls == 2 && store.lookup(Self.package, sha256: Self.sha) != nil)
    }

    @Test func failedCopyIntoStagingPublishesNothing() throws {
        let (store, fs, compiler) = Self.setUp()
        fs.failNext = ("move", "/Unet.mlmodelc")  // moving the compiler output into staging
        #expect(throws: MemoryFileSystem.Failure.self) {
            try store.compiledModel(for: Self.package, sha256: Self.sha, compile: compiler.compile)
        }
        #expect(fs.contents(of: Self.cache).isEmpty)
    }

    @Test func anIncompleteEntryIsNotAHit() throws {
        let (store, fs, compiler) = Self.setUp()
        fs.touch("/cache/Unet-\(Self.sha)")  // a folder without the compiled model
        #expect(store.lookup(Self.package, sha256: Self.sha) == nil)
        let url = try store.compiledModel(for: Self.package, sha256: Self.sha, compile: compiler.compile)
        #expect(fs.exists(url.appendingPathComponent("model.mil")) && compiler.calls == 1)
    }

    @Test func anotherProcessFinishingFirstWins() throws {
        let (store, fs, compiler) = Self.setUp()
        let winner = "/cache/Unet-\(Self.sha)/Unet.mlmodelc/winner.mil"
        let url = try store.compiledModel(for: Self.package, sha256: Self.sha) { package in
            let compiled = try compiler.compile(package)
            fs.touch(winner)  // published by another process while this one compiled
            return compiled
        }
        #expect(fs.exists(URL(fileURLWithPath: winner)) && !fs.exists(url.appendingPathComponent("model.mil")))
        #expect(fs.contents(of: Self.cache) == ["Unet-\(Self.sha)"])
    }

    @Test func staleEntriesAreEvicted() throws {
        let (store, fs, compiler) = Self.setUp(maxEntries: 2)
        fs.touch("/cache/\(Self.otherSha)-Unet/Unet.mlmodelc/model.mil")  // an older cache layout
        fs.touch("/cache/.staging-OLD/Unet.mlmodelc/model.mil")          // an interrupted install
        fs.clock += 7200
        fs.touch("/cache/.staging-RECENT/Unet.mlmodelc/model.mil")       // another process, now
        for (i, name) in ["TextEncoder", "VAEDecoder", "Unet"].enumerated() {
            fs.clock += 10
            let package = URL(fileURLWithPath: "/models/\(name).mlpackage")
            fs.touch(package.path)
            _ = try store.compiledModel(for: package, sha256: String(repeating: "\(i)", count: 64), compile: compiler.compile)
        }
        #expect(fs.contents(of: Self.cache) == [".staging-RECENT", "Unet-\(String(repeating: "2", count: 64))",
                                                "VAEDecoder-\(String(repeating: "1", count: 64))"])
    }

    /// Eviction and `clear()` touch only names the store writes: another library's files, a
    /// user's folder or a name that merely looks similar stay, even beyond `maxEntries`.
    @Test func evictionTouchesOnlyItsOwnEntries() throws {
        let (store, fs, compiler) = Self.setUp(maxEntries: 1)
        let foreign = ["notes.txt", "OtherLibrary/model.bin", "Unet-not-a-hash/Unet.mlmodelc/model.mil",
                       "Unet-\(String(repeating: "A", count: 64))/x", ".staging/x", "-path_x-1/x", "stagingless"]
        for path in foreign { fs.touch("/cache/\(path)") }
        fs.touch("/cache/Unet-\(Self.otherSha)")  // this store's layout without its compiled model: incomplete
        fs.clock += 7200
        for name in ["A", "B", "C"] {
            fs.clock += 10
            _ = try store.compiledModel(for: URL(fileURLWithPath: "/models/\(name).mlpackage"), sha256: Self.sha,
                                        compile: compiler.compile)
        }
        let own = ["C-\(Self.sha)"]
        #expect(fs.contents(of: Self.cache) == (own + foreign.map { String($0.prefix { $0 != "/" }) }).sorted())
        try store.clear()
        #expect(fs.contents(of: Self.cache) == foreign.map { String($0.prefix { $0 != "/" }) }.sorted())
    }

    @Test(arguments: [
        ("Unet-" + String(repeating: "ab", count: 32), CompiledModelStore.Kind.entry(stem: "Unet")),
        ("Unet-Chunk-1-" + String(repeating: "0", count: 64), .entry(stem: "Unet-Chunk-1")),
        ("VAEDecoder-path_models_VAEDecoder_mlpackage-1700000000", .entry(stem: "VAEDecoder")),
        (String(repeating: "0", count: 64) + "-Unet", .earlierLayout),
        (".staging-1234", .staging),
        ("Unet-" + String(repeating: "AB", count: 32), .foreign),
        ("Unet-path_a-b", .foreign),
        ("README.md", .foreign),
    ])
    func namesAreRecognised(name: String, kind: CompiledModelStore.Kind) {
        #expect(CompiledModelStore.kind(of: name) == kind)
    }

    @Test func aHitMarksTheEntryAsRecentlyUsed() throws {
        let (store, fs, compiler) = Self.setUp(maxEntries: 2)
        let a = URL(fileURLWithPath: "/models/A.mlpackage"), b = URL(fileURLWithPath: "/models/B.mlpackage")
        let c = URL(fileURLWithPath: "/models/C.mlpackage")
        for package in [a, b] {
            fs.clock += 10
            _ = try store.compiledModel(for: package, sha256: Self.sha, compile: compiler.compile)
        }
        fs.clock += 10
        #expect(store.lookup(a, sha256: Self.sha) != nil)  // A is now newer than B
        fs.clock += 10
        _ = try store.compiledModel(for: c, sha256: Self.sha, compile: compiler.compile)
        #expect(fs.contents(of: Self.cache) == ["A-\(Self.sha)", "C-\(Self.sha)"])
    }

    /// Core ML's compiler output as Xcode and `coremlcompiler` write it: a `.mlmodelc` folder in a
    /// fresh temporary directory holding coremldata.bin, model.mil, metadata.json and weights/.
    static func writeCompiledModel(_ url: URL) throws {
        try FileManager.default.createDirectory(at: url.appendingPathComponent("weights"), withIntermediateDirectories: true)
        for file in ["coremldata.bin", "model.mil", "metadata.json", "weights/weight.bin"] {
            try Data(file.utf8).write(to: url.appendingPathComponent(file))
        }
    }

    @Test func realDiskEntriesArePublishedWholeAndHit() throws {
        let root = try GoldenFiles.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: root) }
        let package = root.appendingPathComponent("models/Unet.mlpackage", isDirectory: true)
        try FileManager.default.createDirectory(at: package, withIntermediateDirectories: true)
        let cache = root.appendingPathComponent("Caches/CompiledModels", isDirectory: true)
        let store = CompiledModelStore(directory: cache)  // LocalFileSystem: FileManager and rename(2)
        var compiled: [URL] = []
        func compile(_ package: URL) throws -> URL {
            let out = root.appendingPathComponent("compiler-\(compiled.count)/Unet.mlmodelc", isDirectory: true)
            try Self.writeCompiledModel(out)
            compiled.append(out)
            return out
        }
        let first = try store.compiledModel(for: package, sha256: Self.sha, compile: compile)
        #expect(first.standardizedFileURL.path == cache.appendingPathComponent("Unet-\(Self.sha)/Unet.mlmodelc").standardizedFileURL.path)
        #expect(FileManager.default.fileExists(atPath: first.appendingPathComponent("weights/weight.bin").path))
        #expect(!FileManager.default.fileExists(atPath: compiled[0].path))  // moved, not copied
        #expect(try FileManager.default.contentsOfDirectory(atPath: cache.path) == ["Unet-\(Self.sha)"])  // no staging left
        #expect(try store.compiledModel(for: package, sha256: Self.sha, compile: compile) == first && compiled.count == 1)

        // Another process publishes the entry while this one compiles: its entry is kept, ours discarded.
        try store.clear()
        let theirs = cache.appendingPathComponent("Unet-\(Self.sha)/Unet.mlmodelc", isDirectory: true)
        let kept = try store.compiledModel(for: package, sha256: Self.sha) { package in
            let ours = try compile(package)
            try Self.writeCompiledModel(theirs)
            try Data("theirs".utf8).write(to: theirs.appendingPathComponent("model.mil"))
            return ours
        }
        #expect(try String(contentsOf: kept.appendingPathComponent("model.mil"), encoding: .utf8) == "theirs")
        #expect(try FileManager.default.contentsOfDirectory(atPath: cache.path) == ["Unet-\(Self.sha)"])
        #expect(!FileManager.default.fileExists(atPath: compiled[1].path))
    }

    @Test func compiledFolderNextToThePackageIsPreferred() throws {
        let folder = try GoldenFiles.temporaryFolder()
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("Unet.mlpackage"), withIntermediateDirectories: true)
        #expect(ModelFiles.resolve("Unet.mlpackage", in: folder)?.lastPathComponent == "Unet.mlpackage")
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("Unet.mlmodelc"), withIntermediateDirectories: true)
        #expect(ModelFiles.resolve("Unet.mlpackage", in: folder)?.lastPathComponent == "Unet.mlmodelc")
        try FileManager.default.removeItem(at: folder.appendingPathComponent("Unet.mlpackage"))
        #expect(ModelFiles.resolve("Unet.mlpackage", in: folder)?.lastPathComponent == "Unet.mlmodelc")
        #expect(ModelFiles.resolve("VAEDecoder.mlpackage", in: folder) == nil)
        #expect(ModelFiles.compiledName(of: "UnetChunk1.mlpackage") == "UnetChunk1.mlmodelc")
    }

    @Test func folderWithOnlyCompiledModelsLoads() throws {
        let folder = try ModelFolder.make(json: try ModelFolder.json(named: "chunked_unet"))
        for name in ["TextEncoder", "UnetChunk1", "UnetChunk2", "VAEDecoder"] {
            let package = folder.appendingPathComponent("\(name).mlpackage")
            try FileManager.default.moveItem(at: package, to: folder.appendingPathComponent("\(name).mlmodelc"))
        }
        let opened = try ConvertedFolder(url: folder)
        #expect(try opened.modelURLs(.unet).map(\.lastPathComponent) == ["UnetChunk1.mlmodelc", "UnetChunk2.mlmodelc"])
        #expect(try opened.modelURLs(.decoder).map(\.lastPathComponent) == ["VAEDecoder.mlmodelc"])
        try FileManager.default.removeItem(at: folder.appendingPathComponent("UnetChunk2.mlmodelc"))
        #expect(throws: PipelineDescriptionError.missingFile("UnetChunk2.mlpackage", component: "unet", folder: folder.path)) {
            try ConvertedFolder(url: folder).description
        }
    }
}
