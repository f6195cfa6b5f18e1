import ArgumentParser
import Foundation
import NMTDistributed
import NMTModelFiles
import NMTTraining
import NMTTensor
import NMTCommandLine

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mt-train",
        abstract: "Train a GRU encoder-decoder with attention on data prepared by mt-preprocess.",
        discussion: """
        Training options apply in layers, each over the ones before, so the later wins: the \
        defaults, then the saved training.yaml of the --resume run, then --config FILE.yaml (keys \
        as the flags without dashes), then the flags. The resolved options are saved as \
        training.yaml in the model directory.

        Starting and continuing are explicit:
          --resume DIR     continue exactly (weights, optimizer, schedule, data
                           position, random state); bit for bit with the same --threads
          --init-from DIR  take only the weights of DIR (same architecture), fresh
                           optimizer and schedule

        --resume may change only \(TrainingOptions.resumableKeys.joined(separator: ", ")) \
        (the schedule goes on from a new learning rate); any other option that differs from the \
        run's training.yaml is refused, and so is data preprocessed with another SentencePiece \
        model. Resuming a run that has already stopped (its max-updates, max-epochs, max-minutes \
        or patience met) does nothing.

        A directory that holds a model is replaced only with --overwrite. One run at a time \
        writes a model directory: it holds DIR/.lock until it exits.

        The model directory gets model.safetensors (best weights), model.json, \
        vocabulary.json, the SentencePiece model(s), last/ (for --resume), log.jsonl (every \
        logged update and validation) and training.svg.

        Several processes, on one machine or several (Open MPI): mpirun -np N mt-train ... \
        (as root: mpirun --allow-run-as-root). Each process takes a share of every batch and the \
        gradients are summed, so the batch options keep meaning the whole job's batch and N processes \
        train as one; the first process alone prints, logs, validates and writes the model directory, and a \
        checkpoint resumes on any number of processes. Every machine needs the data at the same path.

        TRAINING OPTIONS (--key value or --key=value):

        \(TrainingOptions.help())
        """)

    @Option(name: .customLong("data"), help: "Directory written by mt-preprocess.")
    var data: String?

    @Option(name: .customLong("model-dir"), help: "Where to write the model (a resumed run stays in its --resume directory).")
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

    @OptionGroup var threads: ThreadsOption

    /// The training options given as flags; ArgumentParser cannot declare them from the table, so they
    /// arrive here unparsed and are read through the table.
    @Argument(parsing: .allUnrecognized, help: ArgumentHelp("Training options (listed above).", valueName: "--key value"))
    var trainingFlags: [String] = []

    func validate() throws {
        // An unknown training flag or a bad value is a usage error: read them once here to find out.
        var scratch = TrainingOptions()
        do { try scratch.overlay(flags: trainingFlags) } catch { throw ValidationError("\(error)") }
        if plot != nil { return }
        if resume != nil && initFrom != nil { throw ValidationError("--resume and --init-from exclude each other") }
        if data == nil { throw ValidationError("--data DIR (the output of mt-preprocess) is required") }
        if modelDir == nil && resume == nil { throw ValidationError("give --model-dir DIR (or --resume DIR)") }
        if modelDir != nil && resume != nil {
            throw ValidationError("--resume DIR continues the run in DIR: leave out --model-dir (to branch off a run, use --init-from)")
        }
    }

    func run() throws {
        // A closed stdout or stderr drops the progress lines; it must not kill a run (SIGPIPE).
        StandardError.surviveClosedPipes()
        try Failure.reported(by: "mt-train") {
            if let plot {
                let files = ModelDirectory(plot)
                // The plot skips a missing log quietly (a run may not have logged yet); asked for, it is a failure.
                guard FileManager.default.fileExists(atPath: files.logPath) else { throw FileError("read", files.logPath, "No such file or directory") }
                try TrainingPlot.write(logPath: files.logPath, to: files.plotPath, title: "SwiftNMT training: \(plot)")
                return
            }
            let processes = ProcessGroup.world
            do {
                try run(processes)
            } catch where processes.size > 1 {
                // The others would wait for this process in their next collective: end them all.
                Failure.printError("mt-train", "process \(processes.rank) of \(processes.size): \(error)")
                processes.abort(1)
            }
            processes.finalize()
        }
    }

    func run(_ processes: ProcessGroup) throws {
        BLAS.threads = threads.count
        let directory = modelDir ?? resume!
        let options = try TrainingOptions.resolve(resuming: resume, config: config, flags: trainingFlags, processes: processes)
        let start: TrainingRun.Start = resume != nil ? .resume : initFrom.map { .initFrom($0) } ?? .fresh
        let trainer = try TrainingRun.make(dataDirectory: data!, modelDirectory: directory, options: options, start: start,
                                           overwrite: overwrite, processes: processes)
        if start == .resume, let reason = trainer.stopConditionMet {
            if processes.isLeader {
                StatusLine().note("\(directory) has already stopped at update \(trainer.state.update) (\(reason.rawValue)): nothing to do, "
                                  + "nothing written; to train on, raise the limit (e.g. --max-updates)")
            }
            return
        }
        try train(trainer, in: directory, resuming: start == .resume, processes: processes)
    }

    func train(_ trainer: Trainer, in directory: String, resuming: Bool, processes: ProcessGroup) throws {
        let status = StatusLine(quiet: !processes.isLeader)
        trainer.onEvent = { status.show($0) }
        if resuming { status.note("resuming \(directory) at update \(trainer.state.update) (epoch \(trainer.state.epoch + 1))") }
        if trainer.options.precisionFallsBack {
            status.note("warning: this CPU (\(CPUFeatures.isaName)) has no bf16 instructions: training in f32 instead of bf16")
        }
        status.note("model: \(trainer.model.parameters.count) parameters; "
                    + (processes.size > 1 ? "\(processes.size) processes, " : "") + "BLAS threads: \(BLAS.threads); "
                    + "\(trainer.model.trainingPrecision) products")
        // Ctrl-C, SIGTERM or a closed terminal (SIGHUP): finish the current update, validate, checkpoint,
        // plot, exit.
        for number in [SIGINT, SIGTERM, SIGHUP] { signal(number, SIG_IGN) }
        let interrupts = [SIGINT, SIGTERM, SIGHUP].map { number in
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
        guard processes.isLeader else { return }
        let files = ModelDirectory(directory)
        try TrainingPlot.write(logPath: files.logPath, to: files.plotPath, title: "SwiftNMT training: \(directory)")
        status.note("done (\(reason.rawValue)) after \(trainer.state.update) updates; best model in \(directory); peak memory \(PeakMemory.megabytes()) MiB")
    }
}

/// Progress on stderr: one rewritten status line on a terminal, one line per event otherwise.
final class StatusLine {
    let terminal = isatty(2) != 0
    /// The processes other than the leader of an MPI job say nothing.
    let quiet: Bool

    init(quiet: Bool = false) { self.quiet = quiet }

    func note(_ text: String) {
        if quiet { return }
        StandardError.write((terminal ? "\r\u{1B}[K" : "") + text + "\n")
    }

    func show(_ e: TrainingEvent) {
        if quiet { return }
        switch e.kind {
        case .train:
            let left = e.epochSecondsLeft.map { String(format: "%d:%02d", Int($0) / 60, Int($0) % 60) } ?? "?"
            let line = String(format: "epoch %d %3.0f%% | update %d | loss %.3f | %.0f tok/s | lr %.2e | epoch ends in %@",
                              e.epoch + 1, 100 * (e.epochProgress ?? 0), e.update, e.loss ?? .nan, e.tokensPerSecond ?? 0,
                              Double(e.learningRate ?? 0), left)
            if terminal { StandardError.write("\r\u{1B}[K" + line) } else { note(line) }
        case .valid:
            let bleu = e.bleu.map { String(format: " | BLEU %.2f", $0) } ?? ""
            note(String(format: "validation at update %d | loss %.3f | ppl %.2f", e.update, e.loss ?? .nan, e.perplexity ?? .nan) + bleu
                 + " | " + (e.message ?? ""))
        case .skipped, .stop, .checkpoint:
            note(e.message ?? "")
        }
    }
}

Train.main()
