import Foundation

/// The file operations the compiled-model cache needs, so its atomicity and eviction are tested
/// with an in-memory file system that can fail at any step.
public protocol CacheFileSystem: Sendable {
    /// Whether a file or directory exists at `url`.
    func exists(_ url: URL) -> Bool
    /// Creates `url` and its parents.
    func createDirectory(_ url: URL) throws
    /// Renames `source` to `destination`; throws if `destination` exists. A rename inside one
    /// directory is atomic (POSIX rename(2)).
    func move(_ source: URL, to destination: URL) throws
    /// Removes `url` and everything below it.
    func remove(_ url: URL) throws
    /// The names of the entries of directory `url` (empty when it does not exist).
    func contents(of url: URL) -> [String]
    /// The modification date of `url`, nil when it does not exist.
    func modificationDate(of url: URL) -> Date?
    /// Sets the modification date of `url` (marks a cache entry as used).
    func setModificationDate(_ date: Date, of url: URL) throws
}

/// The real file system (`FileManager`).
public struct LocalFileSystem: CacheFileSystem {
    /// The default file manager's view of the disk.
    public init() {}

    public func exists(_ url: URL) -> Bool {
        FileManager.default.fileExists(atPath: url.path)
    }

    public func createDirectory(_ url: URL) throws {
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    public func move(_ source: URL, to destination: URL) throws {
        try FileManager.default.moveItem(at: source, to: destination)
    }

    public func remove(_ url: URL) throws {
        try FileManager.default.removeItem(at: url)
    }

    public func contents(of url: URL) -> [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: url.path)) ?? []
    }

    public func modificationDate(of url: URL) -> Date? {
        (try? FileManager.default.attributesOfItem(atPath: url.path))?[.modificationDate] as? Date
    }

    public func setModificationDate(_ date: Date, of url: URL) throws {
        try FileManager.default.setAttributes([.modificationDate: date], ofItemAtPath: url.path)
    }
}
