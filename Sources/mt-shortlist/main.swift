import ArgumentParser
import Foundation
import NMTCommandLine
import NMTModelFiles

struct Main: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mt-shortlist",
        abstract: "Write a model's lexical shortlist (shortlist.txt), for mt-translate --shortlist.",
        discussion: """
        Estimates p(target piece | source piece) with IBM Model 1 on a parallel corpus, encoded with the \
        model directory's SentencePiece models, and writes the likeliest target pieces of every source piece \
        and the most frequent target pieces into MODEL_DIR/shortlist.txt (as Marian's lexical shortlists, \
        made with fast_align, do). Use the corpus the model was trained on; the first --max-pairs pairs are \
        read, which bounds time and memory.

        Example: mt-shortlist --model checkpoints/multi30k-en-de --source train.en.gz --target train.de.gz
        """)

    @Option(help: ArgumentHelp("The model directory to write shortlist.txt into.", valueName: "DIR"))
    var model: String

    @Option(help: ArgumentHelp("Source side of the corpus, one sentence per line (plain or .gz).", valueName: "FILE"))
    var source: String

    @Option(help: ArgumentHelp("Target side of the corpus, line by line with --source (plain or .gz).", valueName: "FILE"))
    var target: String

    @Option(help: "Read at most this many sentence pairs. Time and memory grow with them, and with the square of their length: 200,000 pairs of Multi30k take 10 s and 385 MB.")
    var maxPairs = 200_000

    @Option(help: "Keep this many target pieces per source piece (mt-translate --shortlist-translations uses at most these).")
    var keep = 100

    @Option(help: "Rounds of EM.")
    var iterations = 5

    func validate() throws {
        guard maxPairs >= 1 else { throw ValidationError("--max-pairs must be at least 1") }
        guard keep >= 1 else { throw ValidationError("--keep must be at least 1") }
        guard (1...50).contains(iterations) else { throw ValidationError("--iterations must be from 1 to 50") }
    }

    func run() throws {
        try Failure.reported(by: "mt-shortlist") {
            let started = Date()
            let pairs = try ModelDirectory(model).writeShortlist(sourceFile: source, targetFile: target, maxPairs: maxPairs, keep: keep,
                                                                 iterations: iterations)
            StandardError.write(String(format: "mt-shortlist: wrote %@/shortlist.txt from %d sentence pairs in %.1f s\n", model, pairs,
                                       Date().timeIntervalSince(started)))
        }
    }
}

Main.main()
