import Foundation
import NMTModel
import NMTModelFiles
import NMTText

/// One translated line.
public struct Translation: Sendable {
    /// The best hypothesis, detokenized.
    var text: String
    /// The n-best list, best first, with its detokenized texts.
    public var hypotheses: [(text: String, hypothesis: Hypothesis)]
    /// The source was cut to the maximum length.
    public var truncated: Bool
    /// Source pieces (for alignments).
    public var sourcePieces: [String]
}

/// Raw text in, raw text out: SentencePiece encoding, batched beam search, decoding.
public final class Translator {
    let model: Seq2Seq
    let source: SentencePiece
    public let target: SentencePiece
    let search: BeamSearch

    init(model: Seq2Seq, source: SentencePiece, target: SentencePiece) throws {
        guard source.vocabularySize == model.config.sourceVocabSize, target.vocabularySize == model.config.targetVocabSize else {
            throw ModelDirectory.Error.mismatch("vocabulary sizes \(source.vocabularySize)/\(target.vocabularySize) of the SentencePiece models "
                                            + "do not match the model's \(model.config.sourceVocabSize)/\(model.config.targetVocabSize)")
        }
        self.model = model
        self.source = source
        self.target = target
        search = BeamSearch(model: model)
    }

    /// Loads a model directory written by mt-train. A checkpoint (`DIR/last`) loads too, from where the
    /// link points at this moment; when training switches `last` twice while this loads and its checkpoint
    /// goes, it loads the new one instead.
    public convenience init(modelDirectory: String) throws {
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
                try self.init(model: try directory.loadModel(), source: vocabulary.source, target: vocabulary.target)
                return
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
        var ids: [[Int32]] = []
        var truncated: [Bool] = []
        var pieces: [[String]] = []
        for line in lines {
            var encoded = try source.encode(line)
            truncated.append(encoded.count > maxSourceLength)
            if encoded.count > maxSourceLength { encoded = Array(encoded.prefix(maxSourceLength)) }
            ids.append(encoded)
            pieces.append(options.alignments ? encoded.map { source.idToPiece($0) ?? "?" } : [])
        }
        let hypotheses = translate(ids: ids, options: options, batchSize: batchSize, workers: workers)
        return try lines.indices.map { i in
            let list = try hypotheses[i].map { (text: try target.decode($0.tokens), hypothesis: $0) }
            return Translation(text: list.first?.text ?? "", hypotheses: list, truncated: truncated[i], sourcePieces: pieces[i])
        }
    }

    /// The same over id sequences.
    func translate(ids: [[Int32]], options: BeamSearchOptions, batchSize: Int = 64, workers: Int = 1) -> [[Hypothesis]] {
        search.searchInBatches(ids, options: options, batchSize: batchSize, workers: workers)
    }
}
