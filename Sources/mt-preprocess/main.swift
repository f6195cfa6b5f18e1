import ArgumentParser
import Foundation
import NMTText
import NMTTensor
import NMTCommandLine

/// Whether both languages share one SentencePiece model.
enum VocabularySharing: String, EnumerableFlag {
    case joint, separate

    static func help(for value: VocabularySharing) -> ArgumentHelp? {
        switch value {
        case .joint: return "One SentencePiece model for both languages (spm.model; default)."
        case .separate: return "One SentencePiece model per language (spm.SRC.model, spm.TGT.model)."
        }
    }
}

/// The SentencePiece model types offered on the command line.
enum ModelTypeArgument: String, ExpressibleByArgument, CaseIterable {
    case bpe, unigram
    var modelType: SentencePieceModelType { self == .bpe ? .bpe : .unigram }
}

struct Main: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mt-preprocess",
        abstract: "Raw parallel text -> SentencePiece model(s) and binary token datasets for mt-train.",
        discussion: """
        Reads PREFIX.LANG (or PREFIX.LANG.gz) for each prefix and both languages, trains SentencePiece \
        on a sample of the training text (--input-sentence-size), encodes every split on all cores, drops training pairs as Moses' clean-corpus-n does \
        (empty side, longer than --max-length subwords, length ratio above --length-ratio; validation \
        and test lines are never dropped) and writes into --destdir: spm*.model/.vocab, SPLIT.LANG.bin \
        token datasets, SPLIT.LANG.txt raw text for valid/test, and manifest.json (see docs/data-format.md).

        A --destdir holding a different preprocessing (or files without a manifest) is refused unless \
        --force is given; re-running the identical command (same options, same input files and contents) \
        is accepted and regenerates the outputs.

        Memory stays bounded whatever the corpus size: inputs are streamed in chunks of lines, twice \
        (once to check, count and sample them, once to encode them). Progress goes to stderr: one \
        updating line on a terminal, a line every 10 seconds otherwise; --quiet silences it.
        """)

    @Option(name: [.customShort("s"), .customLong("source-lang")], help: "Source language code (file suffix), e.g. en.")
    var sourceLang: String

    @Option(name: [.customShort("t"), .customLong("target-lang")], help: "Target language code, e.g. de.")
    var targetLang: String

    @Option(name: .customLong("trainpref"), help: "Training prefix: reads PREFIX.SRC and PREFIX.TGT.")
    var trainPrefix: String

    @Option(name: .customLong("validpref"), help: "Validation prefix(es), comma-separated -> valid, valid1, ...")
    var validPrefix: String?

    @Option(name: .customLong("testpref"), help: "Test prefix(es), comma-separated -> test, test1, ...")
    var testPrefix: String?

    @Option(name: .customLong("destdir"), help: "Output directory (created when missing).")
    var destDir: String

    /// Bounds that keep a run within memory and SentencePiece's limits; a length ratio must be finite
    /// to be written to manifest.json.
    static let maxVocabSize = 100_000, maxMaxLength = 1000, maxLengthRatio = 1000.0, maxInputSentenceSize = 100_000_000

    @Option(name: .customLong("vocab-size"), help: "Vocabulary size of each SentencePiece model, special ids included (at most \(Self.maxVocabSize)).")
    var vocabSize: Int = 8000

    @Option(name: .customLong("model-type"), help: "SentencePiece model type: bpe or unigram.")
    var modelType: ModelTypeArgument = .bpe

    @Flag(help: "Vocabulary sharing.")
    var sharing: VocabularySharing = .joint

    @Option(name: .customLong("character-coverage"), help: "Share of characters the model covers (1.0 for alphabetic scripts, 0.9995 for CJK).")
    var characterCoverage: Double = 1.0

    @Option(name: .customLong("max-length"), help: "Drop training pairs with a side longer than this many subwords (1 to \(Self.maxMaxLength)).")
    var maxLength: Int = 100

    @Option(name: .customLong("length-ratio"), help: "Drop training pairs whose subword lengths differ by more than this factor (1 to \(Int(Self.maxLengthRatio))).")
    var lengthRatio: Double = 9

    @Option(name: .customLong("input-sentence-size"), help: "At most this many training sentences, sampled uniformly, train each SentencePiece model; this bounds mt-preprocess's memory whatever the corpus size (about 0.4 GB per million sentences of 60-70 bytes). 0 = all of them, so memory grows with the corpus (at most \(Self.maxInputSentenceSize)).")
    var inputSentenceSize: Int = 1_000_000

    /// Threads for SentencePiece training and encoding.
    @OptionGroup var threads: ThreadsOption

    @Flag(name: .customLong("force"), help: "Write into a --destdir that holds a different preprocessing or unknown files.")
    var force = false

    @Flag(name: [.customShort("q"), .customLong("quiet")], help: "No progress messages on stderr.")
    var quiet = false

    static func prefixes(_ s: String?) -> [String] {
        (s ?? "").split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    func validate() throws {
        if sourceLang == targetLang { throw ValidationError("--source-lang and --target-lang are both '\(sourceLang)'.") }
        if vocabSize <= SpecialTokens.count + 1 || vocabSize > Self.maxVocabSize {
            throw ValidationError("--vocab-size must be from \(SpecialTokens.count + 2) to \(Self.maxVocabSize).")
        }
        if !(characterCoverage > 0 && characterCoverage <= 1) { throw ValidationError("--character-coverage must be in (0, 1].") }
        if !(1...Self.maxMaxLength).contains(maxLength) { throw ValidationError("--max-length must be from 1 to \(Self.maxMaxLength).") }
        if !(1...Self.maxLengthRatio).contains(lengthRatio) { throw ValidationError("--length-ratio must be from 1 to \(Int(Self.maxLengthRatio)).") }
        if !(0...Self.maxInputSentenceSize).contains(inputSentenceSize) {
            throw ValidationError("--input-sentence-size must be from 0 to \(Self.maxInputSentenceSize).")
        }
        if validPrefix != nil && Self.prefixes(validPrefix).isEmpty { throw ValidationError("--validpref is empty.") }
        if testPrefix != nil && Self.prefixes(testPrefix).isEmpty { throw ValidationError("--testpref is empty.") }
    }

    func run() throws {
        let options = PreprocessOptions(
            sourceLang: sourceLang, targetLang: targetLang, trainPrefix: trainPrefix,
            validPrefixes: Self.prefixes(validPrefix), testPrefixes: Self.prefixes(testPrefix), destDir: destDir,
            vocabSize: vocabSize, modelType: modelType.modelType, joint: sharing == .joint,
            characterCoverage: characterCoverage, maxLength: maxLength, lengthRatio: lengthRatio,
            inputSentenceSize: inputSentenceSize, threads: threads.count, force: force)
        let quiet = self.quiet
        let line = ProgressLine()
        let preprocessor = Preprocessor(options: options, log: { message in
            if !quiet { line.note("mt-preprocess: " + message) }
        }, progress: { message in
            if !quiet { line.update("mt-preprocess: " + message) }
        })
        try Failure.reported(by: "mt-preprocess") { print(try preprocessor.run().summary) }
    }
}

Main.main()
