import Foundation

/// The compiled-model cache, independent of Core ML: compiled `.mlmodelc` folders keyed by the
/// package's sha256 from pipeline.json.
///
/// Layout: `<directory>/<Name>-<sha256>/<Name>.mlmodelc`. An entry is complete or absent: the
/// compiled model is first moved into a private staging folder `<directory>/.staging-<UUID>` (a
/// copy when Core ML compiled it on another volume), and only then the staging folder is renamed
/// to the entry's name in one atomic rename. A crash, a full disk or a second process compiling
/// the same model never leaves an entry that looks complete but is not.
///
/// Eviction, after every install, touches only what this store wrote, recognised by name:
/// staging folders older than an hour (an interrupted install), entries without their compiled
/// model (incomplete), entries of the earlier `<sha256>-<Name>` layout, and the least recently
/// used entries beyond `maxEntries` (a hit marks an entry as used). Anything else in `directory`
/// (another library's files, a user's folder) is left alone.
public struct CompiledModelStore: Sendable {
    /// Where entries live.
    public let directory: URL
    /// Entries kept after eviction (default 6: two pipelines of three models).
    public let maxEntries: Int
    public let fileSystem: any CacheFileSystem
    /// The current time (injectable for tests).
    public let now: @Sendable () -> Date

    static let stagingPrefix = ".staging-"
    static let stagingMaxAge: TimeInterval = 3600

    /// A store in `directory`.
    public init(directory: URL, maxEntries: Int = 6, fileSystem: any CacheFileSystem = LocalFileSystem(),
                now: @escaping @Sendable () -> Date = { Date() }) {
        self.directory = directory
        self.maxEntries = max(maxEntries, 1)
        self.fileSystem = fileSystem
        self.now = now
    }

    /// The entry folder name for a package: `<Name>-<sha256>`; without a valid sha256 the
    /// package path and modification date stand in for it.
    public func key(for package: URL, sha256: String?) -> String {
        let name = package.deletingPathExtension().lastPathComponent
        if let sha256, sha256.count == 64, sha256.allSatisfy(\.isHexDigit) {
            return "\(name)-\(sha256.lowercased())"
        }
        let modified = Int(fileSystem.modificationDate(of: package)?.timeIntervalSince1970 ?? 0)
        let readable = String(package.path.map { $0.isLetter || $0.isNumber ? $0 : "_" }.suffix(60))
        return "\(name)-path\(readable)-\(modified)"
    }

    /// The compiled model of a complete entry, or nil. A hit marks the entry as used.
    public func lookup(_ package: URL, sha256: String?) -> URL? {
        let entry = directory.appendingPathComponent(key(for: package, sha256: sha256), isDirectory: true)
        let model = entry.appendingPathComponent(compiledName(package), isDirectory: true)
        guard fileSystem.exists(model) else { return nil }
        try? fileSystem.setModificationDate(now(), of: entry)
        return model
    }

    /// Moves `compiled` (a `.mlmodelc` just produced by the compiler) into the entry of
    /// `package`, atomically, and evicts stale entries. If another process installed the entry
    /// first, that one is kept and `compiled` is discarded.
    ///
    /// - Returns: the cached compiled model.
    public func install(_ compiled: URL, for package: URL, sha256: String?) throws -> URL {
        let key = key(for: package, sha256: sha256)
        let entry = directory.appendingPathComponent(key, isDirectory: true)
        let name = compiledName(package)
        let staging = directory.appendingPathComponent(Self.stagingPrefix + UUID().uuidString, isDirectory: true)
        // 1. private staging folder holding the complete compiled model
        do {
            try fileSystem.createDirectory(staging)
            try fileSystem.move(compiled, to: staging.appendingPathComponent(name, isDirectory: true))
        } catch {
            try? fileSystem.remove(staging)
            try? fileSystem.remove(compiled)
            throw error
        }
        // 2. one atomic rename publishes it; a complete entry from another process wins
        if fileSystem.exists(entry.appendingPathComponent(name)) {
            try? fileSystem.remove(staging)
        } else {
            do {
                if fileSystem.exists(entry) { try fileSystem.remove(entry) }  // an incomplete older entry
                try fileSystem.move(staging, to: entry)
            } catch {
                try? fileSystem.remove(staging)
                guard fileSystem.exists(entry.appendingPathComponent(name)) else { throw error }
            }
        }
        try? fileSystem.setModificationDate(now(), of: entry)
        // 3. eviction
        evict(keeping: key)
        return entry.appendingPathComponent(name, isDirectory: true)
    }

    /// The cached compiled model of `package`, compiling it with `compile` on a miss.
    public func compiledModel(for package: URL, sha256: String?, compile: (URL) throws -> URL) throws -> URL {
        if let hit = lookup(package, sha256: sha256) { return hit }
        return try install(try compile(package), for: package, sha256: sha256)
    }

    /// As `compiledModel(for:sha256:compile:)`, with an asynchronous compiler.
    public func compiledModel(for package: URL, sha256: String?,
                              compile: (URL) async throws -> URL) async throws -> URL {
        if let hit = lookup(package, sha256: sha256) { return hit }
        return try install(try await compile(package), for: package, sha256: sha256)
    }

    /// Removes this store's stale staging folders, incomplete entries, entries of the earlier
    /// layout and the least recently used entries beyond `maxEntries`; never `keeping`, and
    /// never a name this store does not write.
    public func evict(keeping: String? = nil) {
        var entries: [(name: String, used: Date)] = []
        for name in fileSystem.contents(of: directory) where name != keeping {
            let url = directory.appendingPathComponent(name)
            let modified = fileSystem.modificationDate(of: url) ?? .distantPast
            switch Self.kind(of: name) {
            case .staging:
                if now().timeIntervalSince(modified) > Self.stagingMaxAge { try? fileSystem.remove(url) }
            case let .entry(stem):
                if fileSystem.exists(url.appendingPathComponent(stem + ".mlmodelc")) {
                    entries.append((name, modified))
                } else {
                    try? fileSystem.remove(url)
                }
            case .earlierLayout:
                try? fileSystem.remove(url)
            case .foreign:
                continue
            }
        }
        let keep = maxEntries - (keeping == nil ? 0 : 1)
        for stale in entries.sorted(by: { $0.used > $1.used }).dropFirst(max(keep, 0)) {
            try? fileSystem.remove(directory.appendingPathComponent(stale.name))
        }
    }

    /// Removes every entry (and staging folder) of this store; other files stay.
    public func clear() throws {
        for name in fileSystem.contents(of: directory) where Self.kind(of: name) != .foreign {
            try fileSystem.remove(directory.appendingPathComponent(name))
        }
    }

    /// What a name in `directory` is, judged by the names this store writes.
    enum Kind: Equatable {
        /// `.staging-<UUID>`.
        case staging
        /// `<Name>-<sha256>` or `<Name>-path<path>-<mtime>` (`key(for:sha256:)`), holding `<Name>.mlmodelc`.
        case entry(stem: String)
        /// `<sha256>-<Name>`: the layout before entries were named by model first.
        case earlierLayout
        /// Not written by this store.
        case foreign
    }

    static func kind(of name: String) -> Kind {
        func isSHA256(_ text: Substring) -> Bool {
            text.count == 64 && text.allSatisfy { $0.isHexDigit && !$0.isUppercase }
        }
        if name.hasPrefix(stagingPrefix), name.count > stagingPrefix.count { return .staging }
        if name.count > 65, let dash = name.index(name.endIndex, offsetBy: -65, limitedBy: name.startIndex),
           name[dash] == "-", isSHA256(name[name.index(after: dash)...]) {
            return .entry(stem: String(name[..<dash]))
        }
        // <Name>-path<letters, digits, _>-<digits>
        if let last = name.lastIndex(of: "-"), !name[name.index(after: last)...].isEmpty,
           name[name.index(after: last)...].allSatisfy(\.isASCII), Int(name[name.index(after: last)...]) != nil,
           let path = name[..<last].range(of: "-path", options: .backwards),
           name[path.upperBound..<last].allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }),
           path.lowerBound > name.startIndex {
            return .entry(stem: String(name[..<path.lowerBound]))
        }
        if name.count > 65, isSHA256(name.prefix(64)), name[name.index(name.startIndex, offsetBy: 64)] == "-" {
            return .earlierLayout
        }
        return .foreign
    }

    private func compiledName(_ package: URL) -> String {
        package.deletingPathExtension().lastPathComponent + ".mlmodelc"
    }
}
