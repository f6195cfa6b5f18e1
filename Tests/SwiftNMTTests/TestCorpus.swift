import Foundation

/// Deterministic generated text for tests (no external data).
struct TestCorpus {
    private var state: UInt64

    init(seed: UInt64) { state = seed &* 6364136223846793005 &+ 1442695040888963407 }

    mutating func next(_ n: Int) -> Int {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return Int((state >> 33) % UInt64(n))
    }

    static let english = ["the", "a", "man", "woman", "dog", "cat", "is", "are", "running", "sitting", "on", "in",
                          "street", "park", "with", "red", "blue", "ball", "two", "children", "playing", "near",
                          "water", "green", "grass", "young", "girl", "boy", "wearing", "hat", "black", "white",
                          "shirt", "holding", "small", "large", "people", "walking", "down", "road"]
    static let german = ["der", "die", "das", "ein", "eine", "mann", "frau", "hund", "katze", "ist", "sind", "läuft",
                         "sitzt", "auf", "im", "straße", "park", "mit", "rot", "blau", "ball", "zwei", "kinder",
                         "spielen", "nahe", "wasser", "grün", "gras", "junges", "mädchen", "junge", "trägt", "hut",
                         "schwarz", "weiß", "hemd", "hält", "klein", "groß", "menschen"]

    /// A sentence of `count` words from `words`, first word capitalized, ending in a period.
    mutating func sentence(_ words: [String], count: Int) -> String {
        var w = (0..<count).map { _ in words[next(words.count)] }
        w[0] = w[0].prefix(1).uppercased() + w[0].dropFirst()
        return w.joined(separator: " ") + "."
    }

    /// `n` pairs of similar length (3...12 words, the target within one word of the source).
    mutating func pairs(_ n: Int) -> [(String, String)] {
        (0..<n).map { _ in
            let len = 3 + next(10)
            let tlen = max(3, len + next(3) - 1)
            return (sentence(TestCorpus.english, count: len), sentence(TestCorpus.german, count: tlen))
        }
    }
}

extension TestCorpus {
    static func makeTempDir(_ name: String) throws -> String {
        let dir = NSTemporaryDirectory() + "swiftnmt-\(name)-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    static func writeLines(_ lines: [String], to path: String) throws {
        try Data((lines.map { $0 + "\n" }.joined()).utf8).write(to: URL(fileURLWithPath: path))
    }

    /// Generated English-German pairs in `dir` (`train.*` and `valid.*`), preprocessed by mt-preprocess into
    /// `dir/data`; returns the data directory.
    static func preprocessed(in dir: String, seed: UInt64, train: Int, valid: Int, vocabSize: Int) throws -> String {
        var corpus = TestCorpus(seed: seed)
        for (split, n) in [("train", train), ("valid", valid)] {
            let pairs = corpus.pairs(n)
            try writeLines(pairs.map(\.0), to: "\(dir)/\(split).en")
            try writeLines(pairs.map(\.1), to: "\(dir)/\(split).de")
        }
        let result = try Executables.run("mt-preprocess", ["--source-lang", "en", "--target-lang", "de", "--trainpref", dir + "/train",
                                                           "--validpref", dir + "/valid", "--destdir", dir + "/data",
                                                           "--vocab-size", "\(vocabSize)", "--quiet", "--threads", "1"])
        guard result.status == 0 else { throw PreprocessingFailed(errors: result.errors) }
        return dir + "/data"
    }

    /// Replaces `path` by `path.gz` (gzip -9).
    static func gzip(_ path: String) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", "exec gzip -9 \"$0\"", path]
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw PreprocessingFailed(errors: "gzip \(path) failed") }
    }

    struct PreprocessingFailed: Error, CustomStringConvertible {
        let errors: String
        var description: String { "mt-preprocess failed: \(errors)" }
    }
}
