import ArgumentParser
import Foundation
import NMTCommandLine
import NMTSearch
import NMTTensor

struct Score: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mt-score",
        abstract: "Score given translations: one 'source<TAB>target' line in, one score out, in order.",
        discussion: """
        The score is the log-probability the model gives the target's pieces followed by end-of-sentence; with \
        --length-penalty alpha it is divided by (pieces + 1)^alpha, as mt-translate --scores ranks and prints \
        hypotheses, so mt-translate's own output scores as it printed. Uses: filtering noisy corpora, reranking \
        n-best lists, evaluating. --model repeated scores with an ensemble, as mt-translate does.

        Every input line gives one output line. A line without a tab, or with an empty source, or longer than the \
        limits, gives 'error: WHY' on its output line and a message naming the line on stderr, and mt-score then \
        exits with status 1 after all lines. Input is read as mt-translate reads it (invalid UTF-8 repaired).
        """)

    @Option(name: .customLong("model"), help: ArgumentHelp("Model directory written by mt-train; repeat it for an ensemble.", valueName: "DIR"))
    var model: [String] = []

    @Option(help: "Divide each score by (target pieces + 1)^alpha, as mt-translate does (0 to 10; default: no division).")
    var lengthPenalty: Float?

    @Option(help: "Pairs per batch (1 to 1024).")
    var batchSize = 64

    @Option(help: "Longest source in pieces (1 to 1000); longer pairs get an error line.")
    var maxSourceLength = 200

    @Option(help: "Longest target in pieces (1 to 2000); longer pairs get an error line.")
    var maxTargetLength = 400

    @OptionGroup var threads: ThreadsOption

    @OptionGroup var precision: PrecisionOption

    func validate() throws {
        guard !model.isEmpty else { throw ValidationError("Missing expected argument '--model <DIR>'") }
        if let lengthPenalty, !(0...10).contains(lengthPenalty) { throw ValidationError("--length-penalty must be from 0 to 10") }
        guard (1...1024).contains(batchSize) else { throw ValidationError("--batch-size must be from 1 to 1024") }
        guard (1...1000).contains(maxSourceLength) else { throw ValidationError("--max-source-length must be from 1 to 1000") }
        guard (1...2000).contains(maxTargetLength) else { throw ValidationError("--max-target-length must be from 1 to 2000") }
    }

    func run() throws {
        var failed = false
        try Failure.reported(by: "mt-score") {
            let input = try LineStream(keepingTabs: true)
            BLAS.threads = threads.count
            let translator = try Failure.during("cannot load the model") { try Translator(modelDirectories: model) }
            try Failure.during("cannot use \(precision.precision) products") { try translator.setPrecision(precision.resolved(for: "mt-score")) }
            setvbuf(stdout, nil, _IOFBF, 1 << 16)
            var index = 0
            while let lines = try input.next(maximum: batchSize * 8) {
                var pairs: [(source: String, target: String)] = [], scored: [Int] = []
                var results = [String](repeating: "", count: lines.count)
                for (k, line) in lines.enumerated() {
                    guard let tab = line.firstIndex(of: "\t") else {
                        results[k] = "error: no tab between source and target"
                        continue
                    }
                    pairs.append((String(line[..<tab]), String(line[line.index(after: tab)...])))
                    scored.append(k)
                }
                for (k, score) in zip(scored, try translator.score(pairs, lengthPenalty: lengthPenalty, batchSize: batchSize,
                                                                   maxSourceLength: maxSourceLength, maxTargetLength: maxTargetLength)) {
                    switch score {
                    case .score(let value): results[k] = String(format: "%.4f", value)
                    case .failure(let why): results[k] = "error: " + why
                    }
                }
                for (k, result) in results.enumerated() {
                    if result.hasPrefix("error: ") {
                        failed = true
                        Failure.printError("mt-score", "line \(index + k + 1): \(result.dropFirst(7))")
                    }
                    print(result)
                }
                index += lines.count
                try StandardOutput.flush()
            }
        }
        if failed { throw ExitCode.failure }
    }
}

Score.main()
