import Foundation
import NMTModel
import NMTTensor

/// Averages the weights of several models of the same configuration and vocabulary (for example the
/// last checkpoints of a run, as fairseq's average_checkpoints.py does) into a new model directory.
public enum ModelAverage {
    /// Checks that the models match (configuration, languages, SentencePiece models byte for byte),
    /// naming the first difference, then writes their element-wise mean (summed in Double, so averaging a
    /// model with itself gives it back exactly) with the first model's vocabulary into `output`.
    /// `output` must not hold a model unless `overwrite`.
    public static func average(_ given: [String], into output: String, halfPrecision: Bool = false,
                               overwrite: Bool = false) throws {
        precondition(!given.isEmpty)
        // RUN/last is a link to a checkpoint RUN/last-N, whose vocabulary is its run's.
        let directories = given.map { URL(fileURLWithPath: $0).standardizedFileURL.resolvingSymlinksInPath().path }
        let target = ModelDirectory(output)
        let outputPath = URL(fileURLWithPath: output).standardizedFileURL.resolvingSymlinksInPath().path
        for directory in directories where URL(fileURLWithPath: directory).standardizedFileURL.resolvingSymlinksInPath().path == outputPath {
            throw ModelDirectory.Error.mismatch("the output \(output) is one of the models to average; write elsewhere")
        }
        if target.holdsModel && !overwrite {
            throw ModelDirectory.Error.mismatch("\(output) already holds a model; use --overwrite to replace it")
        }

        // Everything is checked before anything is read in full or written.
        let first = ModelDirectory(directories[0])
        try first.checkExists()
        let config = try first.loadConfig()
        // A checkpoint's vocabulary is its run's: loadVocabulary says where the files are.
        let (vocabulary, vocabularyPath, _, _) = try first.loadVocabulary()
        for directory in directories.dropFirst() {
            let other = ModelDirectory(directory)
            try other.checkExists()
            if let d = try other.loadConfig().firstDifference(from: config) {
                throw ModelDirectory.Error.mismatch("\(directory) differs from \(directories[0]): \(d.field) is \(d.value) there and \(d.otherValue) here")
            }
            let (otherVocabulary, otherPath, _, _) = try other.loadVocabulary()
            guard (otherVocabulary.sourceLang, otherVocabulary.targetLang) == (vocabulary.sourceLang, vocabulary.targetLang) else {
                throw ModelDirectory.Error.mismatch("\(directory) translates \(otherVocabulary.sourceLang)-\(otherVocabulary.targetLang), "
                                                    + "\(directories[0]) \(vocabulary.sourceLang)-\(vocabulary.targetLang)")
            }
            for (mine, theirs) in [(vocabulary.sourceModel, otherVocabulary.sourceModel), (vocabulary.targetModel, otherVocabulary.targetModel)] {
                let a = vocabularyPath + "/" + mine, b = otherPath + "/" + theirs
                guard try ModelDirectory.contents(of: a) == ModelDirectory.contents(of: b) else {
                    throw ModelDirectory.Error.mismatch("the SentencePiece models \(b) and \(a) differ: the models have different vocabularies")
                }
            }
        }

        var sum: [Double] = []
        var model: Seq2Seq?
        for directory in directories {
            let loaded = try ModelDirectory(directory).loadModel()
            if sum.isEmpty { sum = [Double](repeating: 0, count: loaded.parameters.count) }
            let weights = loaded.parameters.storage.pointer
            for i in sum.indices { sum[i] += Double(weights[i]) }
            model = model ?? loaded
        }
        let averaged = model!
        let weights = averaged.parameters.storage.pointer
        let n = Double(directories.count)
        for i in sum.indices { weights[i] = Float(sum[i] / n) }

        if overwrite { try target.removeModel() }
        try target.create()
        try target.saveModel(averaged, dtype: halfPrecision ? .f16 : .f32)
        try target.installVocabulary(sourceLang: vocabulary.sourceLang, targetLang: vocabulary.targetLang,
                                     sourceModel: vocabularyPath + "/" + vocabulary.sourceModel,
                                     targetModel: vocabularyPath + "/" + vocabulary.targetModel)
        // The models share their vocabulary, so the first one's lexical shortlist serves the average too.
        if let shortlist = FileManager.default.contents(atPath: vocabularyPath + "/" + Shortlist.fileName) {
            try AtomicFile.write(shortlist, to: output + "/" + Shortlist.fileName)
        }
    }
}
