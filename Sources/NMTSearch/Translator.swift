import Foundation
import NMTModel
import NMTModelFiles
import NMTTensor
import NMTText

/// One translated line.
public struct Translation: Sendable {
    /// The best hypothesis, detokenized.
    public var text: String
    /// The n-best list, best first, with its detokenized texts.
    public var hypotheses: [(text: String, hypothesis: Hypothesis)]
    /// The source was cut to the maximum length.
    public var truncated: Bool
    /// Source pieces (for alignments).
    public var sourcePieces: [String]
}

/// A line as beam search takes it (`Translator.encode`).
public struct EncodedLine: Sendable {
    public var ids: [Int32]
    /// The source was cut to the maximum length.
    public var truncated: Bool
    /// Source pieces, for alignments.
    public var pieces: [String]
}

/// Raw text in, raw text out: SentencePiece encoding, batched beam search, decoding. With several
/// models, an ensemble (`EnsembleDecoder`).
public final class Translator {
    let models: [Seq2Seq]
    /// One per model (the ensemble's members).
    private let decoders: [IncrementalDecoder]
    /// Where the first model was loaded from (its shortlist is the ensemble's).
    private var firstDirectory: String?
    let source: SentencePiece
    public let target: SentencePiece
    let search: BeamSearch
    /// The language codes mt-train recorded (vocabulary.json), when loaded from a model directory.
    public private(set) var languages: (source: String, target: String)?

    init(models: [Seq2Seq], source: SentencePiece, target: SentencePiece) throws {
        for model in models {
            guard source.vocabularySize == model.config.sourceVocabSize, target.vocabularySize == model.config.targetVocabSize else {
                throw ModelDirectory.Error.mismatch("vocabulary sizes \(source.vocabularySize)/\(target.vocabularySize) of the SentencePiece models "
                                                + "do not match the model's \(model.config.sourceVocabSize)/\(model.config.targetVocabSize)")
            }
        }
        self.models = models
        self.source = source
        self.target = target
        decoders = models.map { IncrementalDecoder(model: $0) }
        search = BeamSearch(decoder: decoders.count == 1 ? decoders[0] : EnsembleDecoder(members: decoders))
    }

    convenience init(model: Seq2Seq, source: SentencePiece, target: SentencePiece) throws {
        try self.init(models: [model], source: source, target: target)
    }

    /// An ensemble of the models of several directories (one directory: that model alone). They must use
    /// the same SentencePiece models, byte for byte: they decode the same source ids into the same target
    /// ids; the first difference is reported with both files.
    public convenience init(modelDirectories: [String]) throws {
        precondition(!modelDirectories.isEmpty)
        let loaded = try modelDirectories.map { try Self.load($0) }
        let first = loaded[0]
        for (directory, other) in zip(modelDirectories, loaded).dropFirst() {
            for (side, mine, theirs) in [("source", first.sourceFile, other.sourceFile), ("target", first.targetFile, other.targetFile)] {
                guard FileManager.default.contents(atPath: mine) == FileManager.default.contents(atPath: theirs) else {
                    throw ModelDirectory.Error.mismatch("the models of an ensemble must share their vocabularies, but the \(side) "
                                                        + "SentencePiece models \(mine) and \(theirs) differ (\(directory))")
                }
            }
        }
        try self.init(models: loaded.map(\.model), source: first.source, target: first.target)
        languages = (first.sourceLang, first.targetLang)
        firstDirectory = modelDirectories[0]
    }

    /// Loads a model directory written by mt-train. A checkpoint (`DIR/last`) loads too, from where the
    /// link points at this moment; when training switches `last` twice while this loads and its checkpoint
    /// goes, it loads the new one instead.
    public convenience init(modelDirectory: String) throws {
        try self.init(modelDirectories: [modelDirectory])
    }

    private typealias Loaded = (model: Seq2Seq, source: SentencePiece, target: SentencePiece, sourceFile: String, targetFile: String,
                                sourceLang: String, targetLang: String)

    private static func load(_ modelDirectory: String) throws -> Loaded {
        var attempts = 0
        while true {
            let resolved = realpath(modelDirectory, nil).map { path in
                defer { free(path) }
                return String(cString: path)
            } ?? modelDirectory
            let directory = ModelDirectory(resolved)
            do {
                try directory.checkExists()
                let vocabulary = try directory.loadVocabulary()
                return (try directory.loadModel(), vocabulary.source, vocabulary.target,
                        vocabulary.directory + "/" + vocabulary.files.sourceModel, vocabulary.directory + "/" + vocabulary.files.targetModel,
                        vocabulary.files.sourceLang, vocabulary.files.targetLang)
            } catch {
                attempts += 1
                let checkpointWentAway = resolved != modelDirectory && !FileManager.default.fileExists(atPath: resolved)
                if !checkpointWentAway || attempts == 3 { throw error }
            }
        }
    }

    /// Translates lines (any order of lengths); sentences are sorted by length into batches of
    /// `batchSize`, run on `workers` threads, and the results returned in input order. Sources longer
    /// than `maxSourceLength` pieces are cut (and marked). Empty lines give empty translations without decoding.
    public func translate(_ lines: [String], options: BeamSearchOptions, batchSize: Int = 64,
                          maxSourceLength: Int = 200, workers: Int = 1) throws -> [Translation] {
        let sources = try lines.map { try encode($0, maxSourceLength: maxSourceLength, pieces: options.alignments) }
        let hypotheses = translate(ids: sources.map(\.ids), options: options, batchSize: batchSize, workers: workers)
        return try zip(sources, hypotheses).map { try translation($1, of: $0) }
    }

    /// A line as search takes it: its ids, cut to `maxSourceLength` pieces, and its pieces when `pieces` (for alignments).
    public func encode(_ line: String, maxSourceLength: Int, pieces: Bool) throws -> EncodedLine {
        var ids = try source.encode(line)
        let truncated = ids.count > maxSourceLength
        if truncated { ids = Array(ids.prefix(maxSourceLength)) }
        return EncodedLine(ids: ids, truncated: truncated, pieces: pieces ? ids.map { source.idToPiece($0) ?? "?" } : [])
    }

    /// The translation of an encoded line from the n-best list search found for it (none for an empty line).
    public func translation(_ hypotheses: [Hypothesis], of line: EncodedLine) throws -> Translation {
        let list = try hypotheses.map { (text: try target.decode($0.tokens), hypothesis: $0) }
        return Translation(text: list.first?.text ?? "", hypotheses: list, truncated: line.truncated, sourcePieces: line.pieces)
    }

    /// The precision of every model's matrix products from now on (`Seq2Seq.setPrecision`).
    public func setPrecision(_ precision: Precision) throws {
        for model in models { try model.setPrecision(precision) }
    }

    public var precision: Precision { models[0].precision }

    /// Beam search over a lexical shortlist from now on (`Shortlist`): the first model directory's
    /// shortlist.txt, of which each sentence takes the `frequent` most frequent target pieces and the
    /// `translations` likeliest translations of each of its source pieces. nil: the whole vocabulary.
    public func useShortlist(frequent: Int, translations: Int) throws {
        guard let firstDirectory else { throw ModelDirectory.Error.mismatch("a shortlist needs a model directory") }
        var shortlist = try ModelDirectory(firstDirectory).loadShortlist(sourceVocabSize: source.vocabularySize,
                                                                        targetVocabSize: target.vocabularySize)
        shortlist.frequentCount = frequent
        shortlist.translationCount = translations
        setShortlist(shortlist)
    }

    package func setShortlist(_ shortlist: Shortlist?) {
        for decoder in decoders { decoder.shortlist = shortlist }
        search.dropReplicas()
    }

    /// A batch for in-flight search over this translator's model(s), on a decoder of its own (the
    /// weights shared, the workspaces not), for a thread of its own beside `translate`.
    package func makeSearchBatch() -> SearchBatch {
        SearchBatch(decoder: search.decoder.replica())
    }

    /// The same over id sequences.
    func translate(ids: [[Int32]], options: BeamSearchOptions, batchSize: Int = 64, workers: Int = 1) -> [[Hypothesis]] {
        search.searchInBatches(ids, options: options, batchSize: batchSize, workers: workers)
    }
}
