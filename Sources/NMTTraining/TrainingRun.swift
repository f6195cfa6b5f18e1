import Foundation
import NMTMetrics
import NMTModel
import NMTModelFiles
import NMTSearch
import NMTTensor
import NMTText

/// Sets up a training run from an mt-preprocess directory: reads the manifest and datasets,
/// prepares the model directory (SentencePiece models, vocabulary.json, training.yaml), builds
/// or restores the model, and wires validation BLEU (beam search → SentencePiece decoding → BLEU
/// against the raw references, the same scorer as mt-bleu).
public enum TrainingRun {
    public enum Start: Equatable, Sendable {
        case fresh
        /// Continue exactly from `directory/last`.
        case resume
        /// Weights only, from another model directory; fresh optimizer and schedule.
        case initFrom(String)
    }

    public static func make(dataDirectory data: String, modelDirectory dir: String, options: TrainingOptions,
                            start: Start, overwrite: Bool = false) throws -> Trainer {
        let manifest = try PreprocessManifest.load(directory: data)
        let src = manifest.request.sourceLang, tgt = manifest.request.targetLang
        func path(_ file: String) -> String { file.hasPrefix("/") ? file : data + "/" + file }
        func dataset(_ split: String, _ lang: String) throws -> TokenDataset? {
            guard let side = manifest.split(split)?.sides[lang] else { return nil }
            return try TokenDataset(path: path(side.dataset))
        }
        guard let trainSource = try dataset("train", src), let trainTarget = try dataset("train", tgt) else {
            throw TrainingError.badConfig("\(data) has no training split")
        }
        let files = ModelDirectory(dir)
        if start != .resume && files.holdsTrainingRun && !overwrite {
            throw TrainingError.checkpoint("\(dir) already holds a training run: continue it with --resume \(dir), or pass --overwrite to start over")
        }
        try files.create()
        if start != .resume { try files.removeTrainingRun() }

        // SentencePiece models and the vocabulary description travel with the model.
        let vocabulary = manifest.sentencepiece
        guard let sourceModel = vocabulary.models[src], let targetModel = vocabulary.models[tgt],
              let sourceSize = vocabulary.vocabSizes[src], let targetSize = vocabulary.vocabSizes[tgt] else {
            throw TrainingError.badConfig("\(data)/manifest.json lacks the SentencePiece models of \(src) and \(tgt)")
        }
        try files.installVocabulary(sourceLang: src, targetLang: tgt, sourceModel: path(sourceModel), targetModel: path(targetModel))

        let config = options.modelConfig(sourceVocabSize: sourceSize, targetVocabSize: targetSize, jointVocabulary: vocabulary.joint)
        let model = try Seq2Seq(config: config, seed: options.seed)
        if case .initFrom(let other) = start {
            let otherConfig = try ModelDirectory(other).loadConfig()
            guard otherConfig == config else {
                throw TrainingError.checkpoint("--init-from \(other): its model has \(Trainer.difference(otherConfig, config))")
            }
            try ModelDirectory(other).loadWeights(into: model)
        }
        let validSource = try dataset("valid", src), validTarget = try dataset("valid", tgt)
        let trainer = try Trainer(options: options, model: model, directory: dir, trainSource: trainSource, trainTarget: trainTarget,
                                  validSource: validSource, validTarget: validTarget)
        if start == .resume { try trainer.resume(from: dir) }
        // Only a run that can start rewrites the options it will be resumed with.
        try files.writeOptions(options.yaml())

        if let validSource, let referenceFile = manifest.split("valid")?.sides[tgt]?.text {
            let references = try MetricInput.readLines(path: path(referenceFile))
            let limit = options.validBLEUSentences > 0 ? min(options.validBLEUSentences, validSource.count) : validSource.count
            let sources = (0..<limit).map { Array(validSource.tokens($0)) }
            let targetSPM = try SentencePiece(modelPath: path(targetModel))
            let beam = options.validBeam
            // One search (and its workspaces) per model decoded: the same one at every validation.
            var search = BeamSearch(model: trainer.model), searched = trainer.model
            trainer.validationBLEU = { model in
                if model !== searched { (search, searched) = (BeamSearch(model: model), model) }
                let found = search.searchInBatches(sources, options: BeamSearchOptions(beamSize: beam), workers: BLAS.threads)
                let hypotheses = try found.map { try targetSPM.decode($0[0].tokens) }
                return try BLEU().corpusScore(hypotheses: hypotheses, references: [Array(references.prefix(limit))]).score
            }
        }
        return trainer
    }
}
