import ArgumentParser
import Foundation
import NMTSearch
import NMTTensor
import NMTCommandLine

struct Translate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mt-translate",
        abstract: "Translate sentences from stdin to stdout, one line per line, with batched beam search.",
        discussion: """
        Every input line gives exactly one output line (or, with --n-best, its n-best lines), in order. Empty lines give
        empty lines; invalid UTF-8 is repaired (U+FFFD) and translated; NUL, tab and carriage return count as spaces;
        sources longer than --max-source-length pieces are cut, with a warning on stderr.

        Lines are translated as soon as they arrive: typed lines one by one, piped files in batches.

        Scores: a finished hypothesis's score is its log-probability divided by length^alpha (--length-penalty),
        length counting the end-of-sentence token; alpha 0 ranks by raw log-probability.

        Limits, so that no option can exhaust the machine: --beam-size at most \(Self.maxBeamSize), --max-length-ratio
        at most \(Self.maxLengthRatio), --length-penalty from 0 to \(Self.maxLengthPenalty), --batch-size at most \(Self.maxBatchSize),
        --max-source-length at most \(Self.maxSourceLength), --max-output-length at most \(Self.maxOutputLength), and --batch-size
        times --beam-size (the hypotheses decoded at once, each with a row of scores over the vocabulary) at most \(Self.maxHypotheses).
        So a line takes at most --max-output-length decoding steps, and batches of long lines hold fewer sentences, so
        that the memory of a batch is bounded whatever the lines (about 260 MB per thread for the reference model).
        """)

    static let maxBeamSize = 100, maxBatchSize = 1024, maxSourceLength = 1000, maxOutputLength = 2000, maxHypotheses = 6400
    static let maxLengthRatio: Float = 10, maxLengthPenalty: Float = 10

    @Option(name: .customLong("model"), help: ArgumentHelp("""
        Model directory written by mt-train. Repeated: an ensemble, which averages the models' log-probabilities at each \
        step (the models must share their SentencePiece models; alignments come from the first).
        """, valueName: "DIR"))
    var model: [String] = []

    @Option(help: "Beam size (1: greedy; at most \(Self.maxBeamSize)).")
    var beamSize = 5

    @Option(help: "Length normalization exponent alpha, applied to finished hypotheses (0 to \(Self.maxLengthPenalty)).")
    var lengthPenalty: Float = 1.0

    @Option(help: "Maximum output length: this ratio (at most \(Self.maxLengthRatio)) times the source length, plus 10 pieces.")
    var maxLengthRatio: Float = 2.0

    @Option(help: "Longest source, in SentencePiece pieces (at most \(Self.maxSourceLength)); longer lines are cut.")
    var maxSourceLength = 200

    @Option(help: "Longest output, in pieces, whatever --max-length-ratio allows (at most \(Self.maxOutputLength)).")
    var maxOutputLength = BeamSearchOptions.defaultMaxOutputLength

    @Option(help: "Write the N best hypotheses per line in Moses format: i ||| translation ||| score.")
    var nBest = 0

    @Flag(help: "Append ' ||| score' to each translation.")
    var scores = false

    @Flag(help: "Append ' ||| s-t ...': for each target piece, the source piece it attends to most.")
    var alignment = false

    @Option(help: ArgumentHelp("Write an SVG heatmap of the attention of line --heatmap-line to this file.", valueName: "FILE"))
    var heatmap: String?

    @Option(help: "The (1-based) input line whose attention --heatmap draws.")
    var heatmapLine = 1

    @Flag(help: "Sample one translation per line (ancestral sampling, as for back-translation) instead of beam search. Lines go in groups of 8 x --batch-size, so that the output depends only on the input, --seed and --batch-size (a typed line waits for its group or the end of input).")
    var sample = false

    @Option(help: "With --sample: draw among the K most probable pieces only (0: the whole vocabulary).")
    var topK = 0

    @Option(help: "With --sample: divide the logits by T before the softmax (0.05 to 10; below 1 sharper, above 1 flatter).")
    var temperature: Float = 1

    @Option(help: "With --sample: the random seed. The same seed and input give the same output, whatever --threads and --batch-size.")
    var seed: UInt64 = 1

    @Option(help: "Sentences per batch (at most \(Self.maxBatchSize)).")
    var batchSize = 64

    /// Piped input is translated in that many batches at once; a single batch uses that many BLAS threads.
    @OptionGroup var threads: ThreadsOption

    @OptionGroup var precision: PrecisionOption

    @OptionGroup var shortlist: ShortlistOption

    @Flag(help: "At the end, print sentences per second, peak memory and the precision and instruction set that ran to stderr.")
    var stats = false

    func validate() throws {
        guard !model.isEmpty else { throw ValidationError("Missing expected argument '--model <DIR>'") }
        guard (1...Self.maxBeamSize).contains(beamSize) else { throw ValidationError("--beam-size must be from 1 to \(Self.maxBeamSize)") }
        guard nBest >= 0, nBest <= beamSize else { throw ValidationError("--n-best must be between 0 and --beam-size (\(beamSize))") }
        guard (1...Self.maxBatchSize).contains(batchSize) else { throw ValidationError("--batch-size must be from 1 to \(Self.maxBatchSize)") }
        guard (1...Self.maxSourceLength).contains(maxSourceLength) else {
            throw ValidationError("--max-source-length must be from 1 to \(Self.maxSourceLength)")
        }
        guard (1...Self.maxOutputLength).contains(maxOutputLength) else {
            throw ValidationError("--max-output-length must be from 1 to \(Self.maxOutputLength)")
        }
        // NaN fails every comparison, so it is refused too.
        guard maxLengthRatio > 0 && maxLengthRatio <= Self.maxLengthRatio else {
            throw ValidationError("--max-length-ratio must be above 0 and at most \(Self.maxLengthRatio)")
        }
        guard (0...Self.maxLengthPenalty).contains(lengthPenalty) else {
            throw ValidationError("--length-penalty must be from 0 to \(Self.maxLengthPenalty)")
        }
        if sample {
            guard nBest <= 1, !alignment, heatmap == nil else {
                throw ValidationError("--sample draws one translation per line: it goes with neither --n-best, --alignment nor --heatmap")
            }
            guard topK >= 0 else { throw ValidationError("--top-k must not be negative") }
            guard temperature >= 0.05 && temperature <= 10 else { throw ValidationError("--temperature must be from 0.05 to 10") }
        } else if topK != 0 || temperature != 1 || seed != 1 {
            throw ValidationError("--top-k, --temperature and --seed go with --sample")
        }
        if shortlist.shortlist && sample {
            throw ValidationError("--shortlist goes with beam search, not --sample (which draws from the whole vocabulary)")
        }
        guard heatmapLine >= 1 else { throw ValidationError("--heatmap-line must be at least 1") }
        guard batchSize * beamSize <= Self.maxHypotheses else {
            throw ValidationError("--batch-size times --beam-size must be at most \(Self.maxHypotheses), not \(batchSize) × \(beamSize)")
        }
    }

    func run() throws {
        try Failure.reported(by: "mt-translate", translate)
    }

    func translate() throws {
        // The input and the heatmap's path are checked before the model loads, so that no
        // translation is computed only to be lost.
        let input = try LineStream()
        if let heatmap { try StandardOutput.checkWritable(heatmap) }
        BLAS.threads = threads.count
        let translator = try Failure.during("cannot load the model") { try Translator(modelDirectories: model) }
        try Failure.during("cannot use \(precision.precision) products") { try translator.setPrecision(precision.resolved(for: "mt-translate")) }
        if let sizes = shortlist.sizes {
            try Failure.during("cannot load the shortlist") { try translator.useShortlist(frequent: sizes.frequent, translations: sizes.translations) }
        }
        var search = BeamSearchOptions(beamSize: sample ? 1 : beamSize, lengthPenalty: lengthPenalty, maxLengthRatio: maxLengthRatio,
                                       maxOutputLength: maxOutputLength, nBest: max(1, nBest), alignments: alignment || heatmap != nil)
        if sample { search.sampling = SamplingOptions(topK: topK, temperature: temperature, seed: seed) }
        let format = OutputFormat(nBest: nBest > 0, scores: scores, alignments: alignment)
        var heatmapSVG: String?
        var index = 0
        let started = Date()
        setvbuf(stdout, nil, _IOFBF, 1 << 16)
        let workers = BLAS.threads
        // Taking several batches' worth of waiting lines at once sorts them better by length and
        // keeps every worker busy; a typed line is still translated as soon as it arrives.
        // --sample translates fixed groups of lines (line numbers k·G to (k+1)·G), so that which lines share a
        // batch, and hence the last bits of their logits, never depends on timing or --threads.
        let sampleGroup = batchSize * 8
        var waiting: [String] = [], ended = false
        while true {
            let lines: [String]
            if sample {
                while waiting.count < sampleGroup && !ended {
                    if let more = try input.next(maximum: sampleGroup - waiting.count) { waiting += more } else { ended = true }
                }
                if waiting.isEmpty { break }
                lines = Array(waiting.prefix(sampleGroup))
                waiting.removeFirst(lines.count)
            } else {
                guard let more = try input.next(maximum: batchSize * workers * 8) else { break }
                lines = more
            }
            search.sampling?.firstIndex = index
            let translations = try translator.translate(lines, options: search, batchSize: batchSize,
                                                        maxSourceLength: maxSourceLength, workers: workers)
            for translation in translations {
                if translation.truncated {
                    Failure.printWarning("mt-translate", "line \(index + 1) is longer than \(maxSourceLength) pieces and was cut")
                }
                if heatmap != nil, index + 1 == heatmapLine, let best = translation.hypotheses.first {
                    let target = best.hypothesis.tokens.map { translator.target.idToPiece($0) ?? "?" }
                    heatmapSVG = OutputFormat.heatmapSVG(source: translation.sourcePieces, target: target, alignment: best.hypothesis.alignment)
                }
                for line in format.lines(index: index, translation: translation) { print(line) }
                index += 1
            }
            try StandardOutput.flush()
        }
        // Last, so that a heatmap that cannot be written costs none of the translations.
        if let heatmap {
            guard let heatmapSVG else {
                throw HeatmapError(description: "--heatmap-line \(heatmapLine): the input has only \(index) lines, so \(heatmap) was not written")
            }
            try Data(heatmapSVG.utf8).write(to: URL(fileURLWithPath: heatmap))
        }
        if stats {
            let seconds = Date().timeIntervalSince(started)
            StandardError.write(String(format: "mt-translate: %d sentences in %.2f s: %.1f sentences/s, peak memory %d MiB, %@ products on %@ (%@)\n",
                                       index, seconds, Double(index) / seconds, PeakMemory.megabytes(), translator.precision.rawValue,
                                       CPUFeatures.isaName, CPUFeatures.benchmarkClass))
        }
    }
}

struct HeatmapError: Error, CustomStringConvertible {
    let description: String
}

Translate.main()
