import ArgumentParser
import NMTCommandLine
import NMTModelFiles

struct Main: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mt-average",
        abstract: "Average the weights of models into one model (as fairseq's average_checkpoints.py does).",
        discussion: """
        The models must have the same configuration (model.json) and the same vocabulary (languages and \
        SentencePiece models, byte for byte); the first difference is reported and nothing is written. \
        Typical use: the last checkpoints of one run, or runs that differ only in their seed. The result \
        is a model directory that mt-translate loads, with the first model's vocabulary.
        """)

    @Option(name: .customLong("output"), help: ArgumentHelp("The model directory to write.", valueName: "DIR"))
    var output: String

    @Argument(help: ArgumentHelp("Model directories to average (a checkpoint such as RUN/last works too).", valueName: "MODEL_DIR"))
    var models: [String] = []

    @Flag(name: .customLong("half-precision-weights"), help: "Write the weights as 16-bit floats (half the size).")
    var halfPrecision = false

    @Flag(help: "Replace a model that --output already holds.")
    var overwrite = false

    func validate() throws {
        if models.isEmpty { throw ValidationError("give at least one MODEL_DIR to average") }
    }

    func run() throws {
        try Failure.reported(by: "mt-average") {
            try ModelAverage.average(models, into: output, halfPrecision: halfPrecision, overwrite: overwrite)
            StandardError.write("mt-average: wrote the average of \(models.count) model\(models.count == 1 ? "" : "s") to \(output)\n")
        }
    }
}

Main.main()
