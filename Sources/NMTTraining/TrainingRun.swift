import Foundation
import NMTDistributed
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
///
/// A model directory changes only through a run that can start, one run at a time: every check
/// (data, vocabulary, options, `--init-from`, the directory, `--resume`) comes before the first write,
/// and the directory's lock is held from the checks that read the directory until the trainer ends.
public enum TrainingRun {
    public enum Start: Equatable, Sendable {
        case fresh
        /// Continue exactly from `directory/last`.
        case resume
        /// Weights only, from another model directory; fresh optimizer and schedule.
        case initFrom(String)
    }

    /// The trainer of the run, ready to train; a resumed run whose stopping rule the saved state
    /// already meets (`Trainer.stopConditionMet`) is returned with nothing written.
    ///
    /// With several processes, the leader alone reads and writes the model directory; the others build
    /// the same model from the same data, and take the leader's weights and state (`synchronizeWithLeader`).
    public static func make(dataDirectory data: String, modelDirectory dir: String, options: TrainingOptions,
                            start: Start, overwrite: Bool = false, processes: ProcessGroup = ProcessGroup()) throws -> Trainer {
        let manifest = try PreprocessManifest.load(directory: data)
        let src = manifest.request.sourceLang, tgt = manifest.request.targetLang
        func path(_ file: String) throws -> String { try PreprocessManifest.file(file, in: data) }
        let vocabulary = manifest.sentencepiece
        guard let sourceModel = try vocabulary.models[src].map(path), let targetModel = try vocabulary.models[tgt].map(path),
              let sourceSize = vocabulary.vocabSizes[src], let targetSize = vocabulary.vocabSizes[tgt] else {
            throw TrainingError.badConfig("\(data)/manifest.json lacks the SentencePiece models of \(src) and \(tgt)")
        }
        // The model's vocabulary is the SentencePiece models': a manifest that says otherwise would size the
        // model (and bound the ids) by a number that translation then refuses, or that no machine holds.
        for (lang, model, size) in [(src, sourceModel, sourceSize), (tgt, targetModel, targetSize)] {
            let pieces = try SentencePiece(modelPath: model).vocabularySize
            guard pieces == size else {
                throw TrainingError.badConfig("\(data)/manifest.json gives the \(lang) vocabulary \(size) pieces, but its model \(model) has \(pieces)")
            }
        }
        try options.validate()
        let config = options.modelConfig(sourceVocabSize: sourceSize, targetVocabSize: targetSize, jointVocabulary: vocabulary.joint)
        let model = try Seq2Seq(config: config, seed: options.seed)
        model.setTrainingPrecision(options.precision == .bf16 && CPUFeatures.hasBF16 ? .bf16 : .f32)
        /// A split's datasets, every id checked against the model's vocabulary, whatever their headers say.
        func datasets(_ split: String) throws -> (source: TokenDataset, target: TokenDataset)? {
            guard let sides = manifest.split(split)?.sides, let source = sides[src], let target = sides[tgt] else { return nil }
            let pair = try [(source, config.sourceVocabSize), (target, config.targetVocabSize)].map { side, vocabularySize in
                let dataset = try TokenDataset(path: try path(side.dataset))
                try dataset.checkIds(vocabularySize: vocabularySize)
                return dataset
            }
            // Sentence i of one side is the translation of sentence i of the other.
            guard pair[0].count == pair[1].count else {
                throw TrainingError.badConfig("the \(split) datasets are not line-aligned: \(pair[0].path) has \(pair[0].count) sentences, "
                                              + "\(pair[1].path) has \(pair[1].count)")
            }
            return (pair[0], pair[1])
        }
        guard let train = try datasets("train"), train.source.count > 0 else {
            throw TrainingError.badConfig("\(data) has no training sentences")
        }
        guard processes.isLeader else {
            let trainer = try Trainer(options: options, model: model, directory: dir, trainSource: train.source, trainTarget: train.target,
                                      processes: processes)
            try trainer.synchronizeWithLeader()
            return trainer
        }
        if case .initFrom(let other) = start {
            let otherConfig = try ModelDirectory(other).loadConfig()
            guard otherConfig == config else {
                throw TrainingError.checkpoint("--init-from \(other): its model has \(Trainer.difference(otherConfig, config))")
            }
            try ModelDirectory(other).loadWeights(into: model)
        }

        // The checks that read the model directory, under its lock.
        let files = ModelDirectory(dir)
        if start == .resume { try files.checkExists() }
        let lock = try files.lockForWriting()
        if start == .resume {
            try options.checkResumable(from: try TrainingOptions.saved(in: dir), run: dir)
            try files.checkVocabulary(sourceLang: src, targetLang: tgt, sourceModel: sourceModel, targetModel: targetModel)
        } else if files.holdsModel && !overwrite {
            let resume = files.holdsTrainingRun ? "continue its training run with --resume \(dir), or " : ""
            throw TrainingError.checkpoint("\(dir) already holds a model: \(resume)pass --overwrite to replace it")
        }
        let valid = try datasets("valid")
        let trainer = try Trainer(options: options, model: model, directory: dir, trainSource: train.source, trainTarget: train.target,
                                  validSource: valid?.source, validTarget: valid?.target, processes: processes)
        trainer.directoryLock = lock
        if start == .resume { try trainer.resume(from: dir) }
        try trainer.synchronizeWithLeader()
        if let valid, let referenceFile = manifest.split("valid")?.sides[tgt]?.text {
            trainer.validationBLEU = try validationBLEU(of: trainer, sources: valid.source, references: try path(referenceFile),
                                                        targetModel: targetModel, options: options)
        }
        if start == .resume && trainer.stopConditionMet != nil { return trainer }

        // Every check has passed: the writes.
        if start != .resume {
            try files.removeModel()
            try files.installVocabulary(sourceLang: src, targetLang: tgt, sourceModel: sourceModel, targetModel: targetModel)
        }
        if start != .resume || !FileManager.default.fileExists(atPath: dir + "/" + Shortlist.fileName) {
            // The lexical shortlist of mt-translate --shortlist, from the first training pairs (a few seconds).
            let pairs = (0..<min(train.source.count, Shortlist.trainingPairs)).map {
                (source: Array(train.source.tokens($0)), target: Array(train.target.tokens($0)))
            }
            try files.saveShortlist(Shortlist.build(pairs: pairs, sourceVocabSize: sourceSize, targetVocabSize: targetSize))
        }
        try files.writeOptions(options.yaml())
        return trainer
    }

    /// Validation BLEU of the model a trainer validates: its search decodes the first validation sentences.
    private static func validationBLEU(of trainer: Trainer, sources validSource: TokenDataset, references referenceFile: String,
                                       targetModel: String, options: TrainingOptions) throws -> (Seq2Seq) throws -> Double {
        let references = try MetricInput.readLines(path: referenceFile)
        // Checked now rather than at the first validation, which may come hours into the run.
        guard references.count == validSource.count else {
            throw TrainingError.badConfig("the validation references are not line-aligned with the datasets: \(referenceFile) has "
                                          + "\(references.count) lines, \(validSource.path) has \(validSource.count) sentences")
        }
        let limit = options.validBLEUSentences > 0 ? min(options.validBLEUSentences, validSource.count) : validSource.count
        let sources = (0..<limit).map { Array(validSource.tokens($0)) }
        let targetSPM = try SentencePiece(modelPath: targetModel)
        let beam = options.validBeam
        // One search (and its workspaces) per model decoded: the same one at every validation.
        var search = BeamSearch(model: trainer.model), searched = trainer.model
        return { model in
            if model !== searched { (search, searched) = (BeamSearch(model: model), model) }
            // Training in bf16 validates in bf16 too: the weights being validated, packed for this validation only
            // (the training passes must not see packed weights).
            if model.trainingPrecision == .bf16 { try model.setPrecision(.bf16) }
            defer { try? model.setPrecision(.f32) }
            // Batches within --max-pass-tokens positions too, so that validation needs no more memory than training.
            let found = search.searchInBatches(sources, options: BeamSearchOptions(beamSize: beam),
                                               maxPositions: options.maxPassTokens > 0 ? options.maxPassTokens : BeamSearch.maxBatchPositions,
                                               workers: BLAS.threads)
            let hypotheses = try found.map { try targetSPM.decode($0[0].tokens) }
            return try BLEU().corpusScore(hypotheses: hypotheses, references: [Array(references.prefix(limit))]).score
        }
    }
}
