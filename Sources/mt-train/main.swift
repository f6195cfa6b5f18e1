import ArgumentParser
import Foundation
import NMTModelFiles
import NMTTraining
import NMTTensor
import NMTCommandLine

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mt-train",
        abstract: "Train a GRU encoder-decoder with attention on data prepared by mt-preprocess.",
        discussion: """
        Options come from the defaults, then --config FILE.yaml (keys as the flags below without dashes), then the flags.
        The resolved options are saved as training.yaml in the model directory.

        Starting and continuing are explicit:
          --resume DIR      continue exactly (weights, optimizer, schedule, data position, random state)
          --init-from DIR   take only the weights of DIR (same architecture), fresh optimizer and schedule

        The model directory gets model.safetensors (best weights), model.json, vocabulary.json, the SentencePiece
        model(s), last/ (for --resume), log.jsonl (every logged update and validation) and training.svg.
        """)

    @Option(name: .customLong("data"), help: "Directory written by mt-preprocess.")
    var data: String?

    @Option(name: .customLong("model-dir"), help: "Where to write the model (default: the --resume directory).")
    var modelDir: String?

    @Option(help: "YAML file of training options.")
    var config: String?

    @Option(help: ArgumentHelp("Continue the training run in DIR exactly.", valueName: "DIR"))
    var resume: String?

    @Option(name: .customLong("init-from"), help: ArgumentHelp("Start from the weights of the model in DIR.", valueName: "DIR"))
    var initFrom: String?

    @Flag(help: "Start over even if --model-dir holds a training run.")
    var overwrite = false

    @Option(help: ArgumentHelp("Only redraw DIR/training.svg from DIR/log.jsonl (e.g. while a run is going on), then exit.", valueName: "DIR"))
    var plot: String?

    @OptionGroup(title: "Model") var model: ModelFlags
    @OptionGroup(title: "Optimization") var optimization: OptimizationFlags
    @OptionGroup(title: "Duration and validation") var duration: DurationFlags

    func validate() throws {
        if plot != nil { return }
        if resume != nil && initFrom != nil { throw ValidationError("--resume and --init-from exclude each other") }
        if data == nil { throw ValidationError("--data DIR (the output of mt-preprocess) is required") }
        if modelDir == nil && resume == nil { throw ValidationError("give --model-dir DIR (or --resume DIR)") }
    }

    func run() throws {
        if let plot {
            try TrainingPlot.write(logPath: plot + "/log.jsonl", to: plot + "/training.svg", title: "SwiftNMT training: \(plot)")
            return
        }
        let directory = modelDir ?? resume!
        var options = TrainingOptions()
        if let resume {
            let saved = ModelDirectory(resume).optionsPath
            guard let text = ModelDirectory(resume).readOptions() else {
                throw ValidationError("--resume \(resume): \(saved) is missing, so this is not a training run to continue")
            }
            options = try TrainingOptions.load(yaml: text, path: saved)
        }
        if let config {
            guard let text = try? String(contentsOfFile: config, encoding: .utf8) else { throw ValidationError("cannot read --config \(config)") }
            options = try TrainingOptions.load(yaml: text, path: config)
        }
        model.apply(to: &options)
        optimization.apply(to: &options)
        duration.apply(to: &options)
        if options.threads > 0 { BLAS.threads = options.threads }

        let start: TrainingRun.Start = resume != nil ? .resume : initFrom.map { .initFrom($0) } ?? .fresh
        let trainer: Trainer
        do {
            trainer = try TrainingRun.make(dataDirectory: data!, modelDirectory: directory, options: options, start: start, overwrite: overwrite)
        } catch {
            throw ValidationError("\(error)")
        }
        let status = StatusLine()
        trainer.onEvent = { status.show($0) }
        if start == .resume { status.note("resuming \(directory) at update \(trainer.state.update) (epoch \(trainer.state.epoch + 1))") }
        status.note("model: \(trainer.model.parameters.count) parameters; BLAS threads: \(BLAS.threads)")
        // Ctrl-C or SIGTERM: finish the current update, validate, checkpoint, plot, exit.
        signal(SIGINT, SIG_IGN)
        signal(SIGTERM, SIG_IGN)
        let interrupts = [SIGINT, SIGTERM].map { number in
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                status.note("stopping after this update (signal \(number)); the checkpoint will be written")
                trainer.requestStop()
            }
            source.resume()
            return source
        }
        defer { interrupts.forEach { $0.cancel() } }
        let reason = try trainer.run()
        try TrainingPlot.write(logPath: directory + "/log.jsonl", to: directory + "/training.svg", title: "SwiftNMT training: \(directory)")
        status.note("done (\(reason.rawValue)) after \(trainer.state.update) updates; best model in \(directory); peak memory \(PeakMemory.megabytes()) MiB")
    }
}

/// Progress on stderr: one rewritten status line on a terminal, one line per event otherwise.
final class StatusLine {
    let terminal = isatty(2) != 0

    func note(_ text: String) {
        FileHandle.standardError.write(Data(((terminal ? "\r\u{1B}[K" : "") + text + "\n").utf8))
    }

    func show(_ e: TrainingEvent) {
        switch e.kind {
        case .train:
            let left = e.epochSecondsLeft.map { String(format: "%d:%02d", Int($0) / 60, Int($0) % 60) } ?? "?"
            let line = String(format: "epoch %d %3.0f%% | update %d | loss %.3f | %.0f tok/s | lr %.2e | epoch ends in %@",
                              e.epoch + 1, 100 * (e.epochProgress ?? 0), e.update, e.loss ?? .nan, e.tokensPerSecond ?? 0,
                              Double(e.learningRate ?? 0), left)
            if terminal { FileHandle.standardError.write(Data(("\r\u{1B}[K" + line).utf8)) } else { note(line) }
        case .valid:
            let bleu = e.bleu.map { String(format: " | BLEU %.2f", $0) } ?? ""
            note(String(format: "validation at update %d | loss %.3f | ppl %.2f", e.update, e.loss ?? .nan, e.perplexity ?? .nan) + bleu
                 + " | " + (e.message ?? ""))
        case .skipped, .stop, .checkpoint:
            note(e.message ?? "")
        }
    }
}

struct ModelFlags: ParsableArguments {
    @Option(help: "Embedding size E (also the deep-output size).") var embedSize: Int?
    @Option(help: "Hidden size of each encoder direction.") var encoderHiddenSize: Int?
    @Option(help: "Encoder layers (the first bidirectional).") var encoderLayers: Int?
    @Option(help: "Decoder GRU size D.") var decoderHiddenSize: Int?
    @Option(help: "Decoder GRU layers (>= 2: the conditional GRU).") var decoderLayers: Int?
    @Option(help: "Attention size A.") var attentionSize: Int?
    @Option(help: "Share source and target embeddings (default: when the vocabulary is joint).") var sharedEmbeddings: Bool?
    @Option(help: "Tie the output projection to the target embeddings.") var tiedOutput: Bool?

    func apply(to o: inout TrainingOptions) {
        if let v = embedSize { o.embedSize = v }
        if let v = encoderHiddenSize { o.encoderHiddenSize = v }
        if let v = encoderLayers { o.encoderLayers = v }
        if let v = decoderHiddenSize { o.decoderHiddenSize = v }
        if let v = decoderLayers { o.decoderLayers = v }
        if let v = attentionSize { o.attentionSize = v }
        if let v = sharedEmbeddings { o.sharedEmbeddings = v }
        if let v = tiedOutput { o.tiedOutput = v }
    }
}

struct OptimizationFlags: ParsableArguments {
    @Option(help: "Sentence pairs per batch.") var batchSentences: Int?
    @Option(help: "Target tokens (with padding) per batch; replaces --batch-sentences.") var batchTokens: Int?
    @Option(help: "Adam learning rate.") var learningRate: Float?
    @Option(help: "constant | plateau | inverse-sqrt") var schedule: String?
    @Option(help: "Warm-up updates of inverse-sqrt.") var warmup: Int?
    @Option(help: "Plateau: factor applied to the rate.") var decayFactor: Float?
    @Option(help: "Plateau: validations without improvement before decaying.") var decayPatience: Int?
    @Option(help: "Clip the gradient's global norm to this (0: off).") var clipNorm: Float?
    @Option(help: "Label smoothing epsilon.") var labelSmoothing: Float?
    @Option(help: "Dropout rate.") var dropout: Float?
    @Option(help: "Random seed (data order, initialization, dropout).") var seed: UInt64?
    @Option(help: "BLAS threads (default: OPENBLAS_NUM_THREADS if set, else all cores).") var threads: Int?

    func validate() throws {
        if let s = schedule, ScheduleKind(rawValue: s) == nil {
            throw ValidationError("--schedule must be one of \(ScheduleKind.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        if let t = threads, t < 1 { throw ValidationError("--threads must be at least 1") }
    }

    func apply(to o: inout TrainingOptions) {
        if let v = batchSentences { o.batchSentences = v; o.batchTokens = nil }
        if let v = batchTokens { o.batchTokens = v }
        if let v = learningRate { o.learningRate = v }
        if let v = schedule.flatMap(ScheduleKind.init(rawValue:)) { o.schedule = v }
        if let v = warmup { o.warmup = v }
        if let v = decayFactor { o.decayFactor = v }
        if let v = decayPatience { o.decayPatience = v }
        if let v = clipNorm { o.clipNorm = v }
        if let v = labelSmoothing { o.labelSmoothing = v }
        if let v = dropout { o.dropout = v }
        if let v = seed { o.seed = v }
        if let v = threads { o.threads = v }
    }
}

struct DurationFlags: ParsableArguments {
    @Option(help: "Stop after this many updates.") var maxUpdates: Int?
    @Option(help: "Stop after this many epochs.") var maxEpochs: Int?
    @Option(help: "Stop after this many minutes of training.") var maxMinutes: Double?
    @Option(help: "Validate and checkpoint every N updates.") var validEvery: Int?
    @Option(help: "Early stopping: validations without a better BLEU (0: never).") var patience: Int?
    @Option(help: "Beam size of validation decoding (1: greedy).") var validBeam: Int?
    @Option(help: "Validation sentences decoded for BLEU (0: all).") var validBleuSentences: Int?
    @Option(help: "Log every N updates.") var logEvery: Int?
    @Option(help: "Write the best model's weights as 16-bit floats.") var halfPrecisionWeights: Bool?
    @Option(help: "Write the full training state (last/, for --resume) at each validation.") var keepLast: Bool?
    @Option(help: "Write the weights to the model directory at each new best validation BLEU (false: the final weights, at the end).") var keepBest: Bool?

    func apply(to o: inout TrainingOptions) {
        if let v = maxUpdates { o.maxUpdates = v }
        if let v = maxEpochs { o.maxEpochs = v }
        if let v = maxMinutes { o.maxMinutes = v }
        if let v = validEvery { o.validEvery = v }
        if let v = patience { o.patience = v }
        if let v = validBeam { o.validBeam = v }
        if let v = validBleuSentences { o.validBLEUSentences = v }
        if let v = logEvery { o.logEvery = v }
        if let v = halfPrecisionWeights { o.halfPrecisionWeights = v }
        if let v = keepLast { o.keepLast = v }
        if let v = keepBest { o.keepBest = v }
    }
}

Train.main()
