import Foundation
import NMTTensor

/// `manifest.json` in an `mt-preprocess` output directory: what was made from what.
/// See docs/data-format.md. Dictionaries are keyed by language code.
public struct PreprocessManifest: Codable, Equatable, Sendable {
    public static let fileName = "manifest.json"
    public static let formatName = "swiftnmt-preprocess"
    public static let currentFormatVersion = 1

    /// Always "swiftnmt-preprocess".
    public var format: String
    /// Layout version of the directory (1).
    public var formatVersion: Int
    /// Program and version that wrote it.
    public var tool: String
    /// ISO 8601 time of writing.
    public var created: String
    /// Everything that determines the outputs: options and input files.
    public var request: PreprocessRequest
    /// The SentencePiece model(s).
    public var sentencepiece: VocabularyInfo
    /// One entry per split, in order train, valid..., test...
    public var splits: [SplitInfo]
    /// Every file written (names relative to the directory), manifest excluded.
    public var outputs: [String]
    /// Wall-clock seconds the preprocessing took.
    public var seconds: Double

    public func split(_ name: String) -> SplitInfo? { splits.first { $0.name == name } }

    /// Reads `directory/manifest.json`.
    public static func load(directory: String) throws -> PreprocessManifest {
        let path = (directory as NSString).appendingPathComponent(fileName)
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw PreprocessError("cannot read '\(path)': \(error.localizedDescription)")
        }
        let manifest: PreprocessManifest
        do { manifest = try JSONDecoder().decode(PreprocessManifest.self, from: data) } catch {
            throw PreprocessError("'\(path)' is not a valid mt-preprocess manifest: \(error)")
        }
        guard manifest.format == formatName else {
            throw PreprocessError("'\(path)' is not an mt-preprocess manifest (format \"\(manifest.format)\")")
        }
        guard manifest.formatVersion == currentFormatVersion else {
            throw PreprocessError("'\(path)' has format version \(manifest.formatVersion); this build reads \(currentFormatVersion)")
        }
        return manifest
    }

    public func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(self)
    }
}

/// The options and inputs of one preprocessing. Two runs with equal requests produce the same data.
public struct PreprocessRequest: Codable, Equatable, Sendable {
    public var sourceLang: String
    public var targetLang: String
    public var vocabSize: Int
    public var modelType: String
    public var joint: Bool
    public var characterCoverage: Double
    public var maxLength: Int
    public var lengthRatio: Double
    public var inputSentenceSize: Int
    public var inputs: [InputInfo]

    /// Human-readable list of the fields that differ from `other`.
    public func differences(from other: PreprocessRequest) -> [String] {
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
public struct InputInfo: Codable, Equatable, Sendable {
    /// Split name (train, valid, valid1, test, test1, ...).
    public var split: String
    public var lang: String
    /// Absolute path of the file read.
    public var path: String
    /// Size on disk in bytes.
    public var bytes: Int
    /// Number of lines.
    public var lines: Int
    /// FNV-1a 64 of the (decompressed) contents.
    public var checksum: String
    /// Read through `gzip -dc`.
    public var compressed: Bool
}

/// The SentencePiece model(s) of a preprocessed directory.
public struct VocabularyInfo: Codable, Equatable, Sendable {
    /// One model shared by both languages.
    public var joint: Bool
    /// Language -> `.model` file (the same file for both languages when joint).
    public var models: [String: String]
    /// Language -> vocabulary text file (`piece<TAB>score`, line n = id n).
    public var vocabularies: [String: String]
    /// Language -> vocabulary size.
    public var vocabSizes: [String: Int]
    /// Language -> number of sentences the model was trained on.
    public var trainingSentences: [String: Int]
    public var padId: Int32
    public var unkId: Int32
    public var bosId: Int32
    public var eosId: Int32
}

/// Pairs dropped from the training data by the clean-corpus-n rules (first matching reason).
public struct DroppedCounts: Codable, Equatable, Sendable {
    /// A side encodes to no pieces (empty or whitespace-only line).
    public var empty: Int
    /// A side is longer than `maxLength` subwords.
    public var tooLong: Int
    /// One side is more than `lengthRatio` times longer than the other (in subwords).
    public var lengthRatio: Int
    public var total: Int { empty + tooLong + lengthRatio }

    public init(empty: Int = 0, tooLong: Int = 0, lengthRatio: Int = 0) {
        self.empty = empty
        self.tooLong = tooLong
        self.lengthRatio = lengthRatio
    }
}

/// One split (train, valid, test, ...).
public struct SplitInfo: Codable, Equatable, Sendable {
    public var name: String
    /// train, valid or test.
    public var kind: String
    /// The prefix given on the command line.
    public var prefix: String
    /// Pairs read.
    public var inputPairs: Int
    /// Pairs written (equal to `inputPairs` for valid and test, which are never cleaned).
    public var pairs: Int
    /// Only for train.
    public var dropped: DroppedCounts?
    /// Language -> side statistics and files.
    public var sides: [String: SideInfo]
}

public struct SideInfo: Codable, Equatable, Sendable {
    /// The token dataset file (`TokenDataset`).
    public var dataset: String
    /// Raw text copy (valid and test only), one line per sentence, for BLEU and translation.
    public var text: String?
    public var tokens: Int
    public var averageLength: Double
    public var maxLength: Int
    /// Pieces equal to the model's unknown id.
    public var unknownTokens: Int
    public var unknownRate: Double
}
