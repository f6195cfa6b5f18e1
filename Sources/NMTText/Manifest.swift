import Foundation
import NMTTensor

/// `manifest.json` in an `mt-preprocess` output directory: what was made from what.
/// See docs/data-format.md. Dictionaries are keyed by language code.
package struct PreprocessManifest: Codable, Equatable, Sendable {
    static let fileName = "manifest.json"
    static let formatName = "swiftnmt-preprocess"
    static let currentFormatVersion = 1

    /// Always "swiftnmt-preprocess".
    var format: String
    /// Layout version of the directory (1).
    var formatVersion: Int
    /// Program and version that wrote it.
    var tool: String
    /// ISO 8601 time of writing.
    var created: String
    /// Everything that determines the outputs: options and input files.
    package var request: PreprocessRequest
    /// The SentencePiece model(s).
    package var sentencepiece: VocabularyInfo
    /// One entry per split, in order train, valid..., test...
    var splits: [SplitInfo]
    /// Every file written (names relative to the directory), manifest excluded.
    var outputs: [String]
    /// Wall-clock seconds the preprocessing took.
    var seconds: Double

    package func split(_ name: String) -> SplitInfo? { splits.first { $0.name == name } }

    /// Reads `directory/manifest.json`.
    package static func load(directory: String) throws -> PreprocessManifest {
        let path = (directory as NSString).appendingPathComponent(fileName)
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw PreprocessError("cannot read '\(path)': \(error.localizedDescription)")
        }
        let manifest = try JSONFile.decode(PreprocessManifest.self, from: data, path: path)
        guard manifest.format == formatName else {
            throw PreprocessError("'\(path)' is not an mt-preprocess manifest (format \"\(manifest.format)\")")
        }
        guard manifest.formatVersion == currentFormatVersion else {
            throw PreprocessError("'\(path)' has format version \(manifest.formatVersion); this build reads \(currentFormatVersion)")
        }
        return manifest
    }

    func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(self)
    }
}

/// The options and inputs of one preprocessing. Two runs with equal requests produce the same data.
package struct PreprocessRequest: Codable, Equatable, Sendable {
    package var sourceLang: String
    package var targetLang: String
    var vocabSize: Int
    var modelType: String
    var joint: Bool
    var characterCoverage: Double
    var maxLength: Int
    var lengthRatio: Double
    var inputSentenceSize: Int
    var inputs: [InputInfo]

    /// Human-readable list of the fields that differ from `other`.
    func differences(from other: PreprocessRequest) -> [String] {
        var d: [String] = []
        func check<T: Equatable>(_ name: String, _ a: T, _ b: T) { if a != b { d.append("\(name) \(b) -> \(a)") } }
        check("source-lang", sourceLang, other.sourceLang)
        check("target-lang", targetLang, other.targetLang)
        check("vocab-size", vocabSize, other.vocabSize)
        check("model-type", modelType, other.modelType)
        check("joint", joint, other.joint)
        check("character-coverage", characterCoverage, other.characterCoverage)
        check("max-length", maxLength, other.maxLength)
        check("length-ratio", lengthRatio, other.lengthRatio)
        check("input-sentence-size", inputSentenceSize, other.inputSentenceSize)
        if inputs != other.inputs {
            let mine = Set(inputs.map(\.path)), theirs = Set(other.inputs.map(\.path))
            let added = inputs.map(\.path).filter { !theirs.contains($0) }
            let removed = other.inputs.map(\.path).filter { !mine.contains($0) }
            if !added.isEmpty { d.append("new input files \(added.joined(separator: ", "))") }
            if !removed.isEmpty { d.append("input files no longer used \(removed.joined(separator: ", "))") }
            let changed = inputs.filter { i in other.inputs.contains { $0.path == i.path && $0 != i } }.map(\.path)
            if !changed.isEmpty { d.append("changed input files \(changed.joined(separator: ", "))") }
            if added.isEmpty && removed.isEmpty && changed.isEmpty { d.append("input files (order or splits)") }
        }
        return d
    }
}

/// One input file.
struct InputInfo: Codable, Equatable, Sendable {
    /// Split name (train, valid, valid1, test, test1, ...).
    var split: String
    var lang: String
    /// Absolute path of the file read.
    var path: String
    /// Size on disk in bytes.
    var bytes: Int
    /// Number of lines.
    var lines: Int
    /// FNV-1a 64 of the (decompressed) contents.
    var checksum: String
    /// Read through `gzip -dc`.
    var compressed: Bool
}

/// The SentencePiece model(s) of a preprocessed directory.
package struct VocabularyInfo: Codable, Equatable, Sendable {
    /// One model shared by both languages.
    package var joint: Bool
    /// Language -> `.model` file (the same file for both languages when joint).
    package var models: [String: String]
    /// Language -> vocabulary text file (`piece<TAB>score`, line n = id n).
    var vocabularies: [String: String]
    /// Language -> vocabulary size.
    package var vocabSizes: [String: Int]
    /// Language -> number of sentences the model was trained on.
    var trainingSentences: [String: Int]
    var padId: Int32
    var unkId: Int32
    var bosId: Int32
    var eosId: Int32
}

/// Pairs dropped from the training data by the clean-corpus-n rules (first matching reason).
struct DroppedCounts: Codable, Equatable, Sendable {
    /// A side encodes to no pieces (empty or whitespace-only line).
    var empty: Int
    /// A side is longer than `maxLength` subwords.
    var tooLong: Int
    /// One side is more than `lengthRatio` times longer than the other (in subwords).
    var lengthRatio: Int
    var total: Int { empty + tooLong + lengthRatio }

    init(empty: Int = 0, tooLong: Int = 0, lengthRatio: Int = 0) {
        self.empty = empty
        self.tooLong = tooLong
        self.lengthRatio = lengthRatio
    }
}

/// One split (train, valid, test, ...).
package struct SplitInfo: Codable, Equatable, Sendable {
    var name: String
    /// train, valid or test.
    var kind: String
    /// The prefix given on the command line.
    var prefix: String
    /// Pairs read.
    var inputPairs: Int
    /// Pairs written (equal to `inputPairs` for valid and test, which are never cleaned).
    var pairs: Int
    /// Only for train.
    var dropped: DroppedCounts?
    /// Language -> side statistics and files.
    package var sides: [String: SideInfo]
}

package struct SideInfo: Codable, Equatable, Sendable {
    /// The token dataset file (`TokenDataset`).
    package var dataset: String
    /// Raw text copy (valid and test only), one line per sentence, for BLEU and translation.
    package var text: String?
    var tokens: Int
    var averageLength: Double
    var maxLength: Int
    /// Pieces equal to the model's unknown id.
    var unknownTokens: Int
    var unknownRate: Double
}

extension PreprocessManifest {
    /// The path of a file the manifest of `directory` names (a dataset, a reference text, a SentencePiece
    /// model). A manifest is data that may come from elsewhere, so it may only name files inside its
    /// directory: a relative path without `..` that no symbolic link leads out of. Otherwise it could make
    /// mt-train read any file as a dataset, or copy any file into a model directory as a SentencePiece model.
    package static func file(_ name: String, in directory: String) throws -> String {
        let manifest = (directory as NSString).appendingPathComponent(fileName)
        guard !name.isEmpty, !name.hasPrefix("/"), !name.split(separator: "/").contains("..") else {
            throw PreprocessError("'\(manifest)' names the file '\(name)': files must be named relative to the data directory, inside it")
        }
        let path = (directory as NSString).appendingPathComponent(name)
        // A missing file is left for the reader to report.
        guard let real = realPath(path), let realDirectory = realPath(directory) else { return path }
        guard real.hasPrefix(realDirectory.hasSuffix("/") ? realDirectory : realDirectory + "/") else {
            throw PreprocessError("'\(manifest)' names the file '\(name)', a symbolic link to '\(real)' outside the data directory")
        }
        return path
    }

    private static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}
