import ArgumentParser
import Foundation
import NMTMetrics
import NMTCommandLine

extension BLEUTokenizer: ExpressibleByArgument {}
extension BLEUSmoothing: ExpressibleByArgument {}

enum MetricName: String, CaseIterable, ExpressibleByArgument {
    case bleu, chrf
}

enum OutputFormat: String, CaseIterable, ExpressibleByArgument {
    case json, text
}

struct MTBleu: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mt-bleu",
        abstract: "BLEU and chrF scores that agree with sacreBLEU 2.x.",
        discussion: """
            Scores hypotheses (standard input, or -i FILE) against one or more reference files, \
            with sacreBLEU's options, defaults and output formats. Files are UTF-8 (.gz files are \
            decompressed); lines are split on \\n only and trailing whitespace is stripped, as \
            sacreBLEU does. Unlike sacreBLEU, tabs in the hypotheses do not denote several \
            systems: every line is one hypothesis, and -i takes one file.

            Example: mt-bleu ref.de -i hyp.de -m bleu chrf -f text
            """,
        version: "mt-bleu \(MetricSignature.defaultVersion)"
    )

    @Argument(help: ArgumentHelp("Reference file(s), one segment per line.", valueName: "REF"))
    var references: [String] = []

    @Option(name: [.customShort("i"), .long], help: ArgumentHelp("Read the hypotheses from this file instead of standard input.", valueName: "HYP"))
    var input: String?

    @Option(name: [.customShort("m"), .long], parsing: .upToNextOption,
            help: "Metrics to compute (bleu, chrf).")
    var metrics: [MetricName] = [.bleu]

    @Flag(name: [.customLong("sentence-level"), .customLong("sl", withSingleDash: true)],
          help: "Score every sentence (BLEU with effective order); one metric only.")
    var sentenceLevel = false

    // BLEU
    @Option(name: [.customLong("tokenize"), .customLong("tok", withSingleDash: true)],
            help: "BLEU tokenizer: 13a, none, intl, char or zh.")
    var tokenize: BLEUTokenizer = .v13a

    @Flag(name: [.customLong("lowercase"), .customLong("lc", withSingleDash: true)],
          help: "Case-insensitive BLEU.")
    var lowercase = false

    @Option(name: [.customShort("s"), .customLong("smooth-method")],
            help: "BLEU smoothing: exp, floor, add-k or none.")
    var smoothMethod: BLEUSmoothing = .exp

    @Option(name: [.customLong("smooth-value"), .customLong("sv", withSingleDash: true)],
            help: "Smoothing value for floor (default 0.1) and add-k (default 1).")
    var smoothValue: Double?

    @Flag(name: .customLong("force"), help: "Do not warn about input that looks tokenized.")
    var force = false

    // chrF
    /// Bounds on chrF's parameters: longer n-grams than these measure nothing, and a larger beta
    /// (squared in the F-score) would overflow to infinity.
    static let maxChrfOrder = 100, maxChrfBeta = 1000, maxNumRefs = 1000

    @Option(name: [.customLong("chrf-char-order"), .customLong("cc", withSingleDash: true)],
            help: "chrF character n-gram order (0 to \(Self.maxChrfOrder)).")
    var chrfCharOrder = 6

    @Option(name: [.customLong("chrf-word-order"), .customLong("cw", withSingleDash: true)],
            help: "chrF word n-gram order (2 gives chrF++; 0 to \(Self.maxChrfOrder)).")
    var chrfWordOrder = 0

    @Option(name: .customLong("chrf-beta"), help: "chrF's weight of recall relative to precision (0 to \(Self.maxChrfBeta)).")
    var chrfBeta = 2

    @Flag(name: .customLong("chrf-whitespace"), help: "Keep whitespace in chrF's character n-grams.")
    var chrfWhitespace = false

    @Flag(name: .customLong("chrf-lowercase"), help: "Case-insensitive chrF.")
    var chrfLowercase = false

    @Flag(name: .customLong("chrf-eps-smoothing"), help: "chrF++.py-style epsilon smoothing instead of effective order.")
    var chrfEpsSmoothing = false

    // Input and output
    @Option(name: [.customLong("num-refs"), .customLong("nr", withSingleDash: true)],
            help: "Read this many tab-separated references per line from the single reference file (1 to \(Self.maxNumRefs)).")
    var numRefs = 1

    @Option(name: [.customShort("f"), .long], help: "Output format: json or text.")
    var format: OutputFormat = .json

    @Option(name: [.customShort("w"), .long], help: "Decimal places of the printed scores.")
    var width = 1

    @Flag(name: [.customShort("b"), .customLong("score-only")], help: "Print only the score(s).")
    var scoreOnly = false

    @Flag(name: [.customLong("short"), .customLong("sh", withSingleDash: true)],
          help: "Abbreviated signatures (text output).")
    var short = false

    @Flag(name: [.customShort("q"), .long], help: "No warnings on standard error.")
    var quiet = false

    func validate() throws {
        if references.isEmpty {
            throw ValidationError("Give at least one reference file (before -i).")
        }
        if !(1...Self.maxNumRefs).contains(numRefs) {
            throw ValidationError("--num-refs must be from 1 to \(Self.maxNumRefs).")
        }
        if numRefs > 1 && references.count > 1 {
            throw ValidationError("--num-refs reads tab-separated references from a single file; give only one reference file.")
        }
        if sentenceLevel && Set(metrics).count > 1 {
            throw ValidationError("Only one metric can be used in sentence-level mode.")
        }
        if width < 0 || width > 20 {
            throw ValidationError("--width must be between 0 and 20.")
        }
        if let v = smoothValue, !(v >= 0) || !v.isFinite {
            throw ValidationError("--smooth-value must be a non-negative number.")
        }
        let orders = 0...Self.maxChrfOrder
        if !orders.contains(chrfCharOrder) || !orders.contains(chrfWordOrder) || chrfCharOrder + chrfWordOrder == 0 {
            throw ValidationError("chrF needs orders from 0 to \(Self.maxChrfOrder) with a positive sum.")
        }
        if !(0...Self.maxChrfBeta).contains(chrfBeta) {
            throw ValidationError("--chrf-beta must be from 0 to \(Self.maxChrfBeta).")
        }
    }

    func run() throws {
        try Failure.reported(by: "mt-bleu", score)
    }

    private func score() throws {
        // References.
        var refStreams: [[String]] = []
        var refNames: [String] = []
        if numRefs > 1 {
            let lines = try MetricInput.readLines(path: references[0])
            refStreams = try MetricInput.splitReferences(lines, count: numRefs, source: references[0])
            refNames = (1...numRefs).map { "\(references[0]) field \($0)" }
        } else {
            for path in references {
                refStreams.append(try MetricInput.readLines(path: path))
                refNames.append(path)
            }
        }
        // Hypotheses.
        let hypName = input ?? "standard input"
        let hypotheses: [String]
        if let path = input {
            hypotheses = try MetricInput.readLines(path: path)
        } else {
            hypotheses = try MetricInput.lines(from: MetricInput.readStandardInput(), source: hypName)
        }
        if hypotheses.isEmpty { throw MetricError.noHypotheses(source: hypName) }
        try MetricInput.checkLengths(hypotheses: hypotheses.count, references: refStreams.map(\.count),
                                     hypothesisSource: hypName, referenceSources: refNames)

        let bleu = BLEU(BLEUOptions(tokenizer: tokenize, lowercase: lowercase, smoothMethod: smoothMethod,
                                    smoothValue: smoothValue, effectiveOrder: sentenceLevel))
        let chrf = CHRF(CHRFOptions(charOrder: chrfCharOrder, wordOrder: chrfWordOrder, beta: chrfBeta,
                                    lowercase: chrfLowercase, whitespace: chrfWhitespace, epsSmoothing: chrfEpsSmoothing))
        let nrefs = refStreams.count
        let selected = MetricName.allCases.filter(metrics.contains)  // sacreBLEU sorts: BLEU, then CHRF

        if selected.contains(.bleu) && !force && !quiet {
            let tokenized = hypotheses.reduce(0) { $0 + ($1.hasSuffix(" .") ? 1 : 0) }
            if tokenized >= 100 {
                warn("That's 100 lines that end in a tokenized period ('.')")
                warn("It looks like you forgot to detokenize your test data, which may hurt your score.")
                warn("If you insist your data is detokenized, or don't care, you can suppress this message with the `force` parameter.")
            }
        }

        if sentenceLevel {
            var out = ""
            switch selected[0] {
            case .bleu:
                let sig = bleu.signature(numRefs: nrefs)
                for score in try bleu.sentenceScores(hypotheses: hypotheses, references: refStreams) {
                    out += score.report(signature: sig).formatted(width: width, scoreOnly: scoreOnly, shortSignature: short) + "\n"
                }
            case .chrf:
                let sig = chrf.signature(numRefs: nrefs)
                for score in try chrf.sentenceScores(hypotheses: hypotheses, references: refStreams) {
                    out += score.report(signature: sig).formatted(width: width, scoreOnly: scoreOnly, shortSignature: short) + "\n"
                }
            }
            print(out, terminator: "")
            return
        }

        var results: [String] = []
        for metric in selected {
            let report: ScoreReport
            switch metric {
            case .bleu:
                report = try bleu.corpusScore(hypotheses: hypotheses, references: refStreams)
                    .report(signature: bleu.signature(numRefs: nrefs))
            case .chrf:
                report = try chrf.corpusScore(hypotheses: hypotheses, references: refStreams)
                    .report(signature: chrf.signature(numRefs: nrefs))
            }
            results.append(report.formatted(width: width, scoreOnly: scoreOnly, json: format == .json, shortSignature: short))
        }
        print(ScoreReport.combine(results, json: format == .json))
    }

    private func warn(_ message: String) {
        StandardError.write("mt-bleu: \(message)\n")
    }
}

MTBleu.main()
