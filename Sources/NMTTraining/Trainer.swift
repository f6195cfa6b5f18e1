import Foundation
import NMTModel
import NMTModelFiles
import NMTDistributed
import NMTTensor
import NMTText

/// Everything `--resume` needs beyond the weights and the optimizer's moments.
public struct TrainingState: Codable, Equatable, Sendable {
    public var update = 0
    public var epoch = 0
    /// Batches of `epoch` already trained on.
    var batchInEpoch = 0
    var rng: RandomSource
    var schedule: LearningRateSchedule
    var bestScore: Double?
    var bestUpdate = 0
    var validationsWithoutImprovement = 0
    var skippedUpdates = 0
    var trainingSeconds = 0.0
}

extension TrainingState {
    /// Checks a saved state before a run goes on from it: every count within what a run reaches and within
    /// the updates trained, every figure finite, the schedule the options'. A state.json edited or garbled
    /// would otherwise go on with an epoch of 10^15 or a negative update count.
    func check(file: String, options: TrainingOptions) throws {
        func require(_ holds: Bool, _ why: @autoclosure () -> String) throws {
            if !holds { throw TrainingError.checkpoint("\(file) is not a state a run can go on from: \(why())") }
        }
        let updates = 0...TrainingOptions.maxUpdates
        try require(updates.contains(update), "update \(update) is not from 0 to \(TrainingOptions.maxUpdates)")
        // An epoch takes at least one update; a validation without improvement is at an update of its own.
        for (name, value) in [("epoch", epoch), ("batchInEpoch", batchInEpoch), ("bestUpdate", bestUpdate),
                              ("skippedUpdates", skippedUpdates)] {
            try require((0...update).contains(value), "\(name) \(value) is not from 0 to the update, \(update)")
        }
        try require(updates.contains(validationsWithoutImprovement),
                    "validationsWithoutImprovement \(validationsWithoutImprovement) is not from 0 to \(TrainingOptions.maxUpdates)")
        try require(trainingSeconds.isFinite && trainingSeconds >= 0, "trainingSeconds \(trainingSeconds) is not a duration")
        try require(bestScore?.isFinite ?? true, "bestScore \(bestScore ?? 0) is not a finite number")
        try require(schedule.kind == options.schedule && schedule.warmup == options.warmup && schedule.factor == options.decayFactor
                        && schedule.patience == options.decayPatience,
                    "its learning-rate schedule is not the one of the run's options")
        try require([schedule.baseRate, schedule.plateauRate, schedule.minimumRate].allSatisfy { $0.isFinite && $0 > 0 },
                    "its learning-rate schedule holds a rate that is not a positive number")
    }
}

/// One line of the training log (`log.jsonl` in the model directory).
public struct TrainingEvent: Codable, Sendable {
    public enum Kind: String, Codable, Sendable { case train, valid, checkpoint, skipped, stop }
    public var kind: Kind
    public var update: Int
    public var epoch: Int
    public var loss: Double?
    public var perplexity: Double?
    public var bleu: Double?
    public var tokensPerSecond: Double?
    public var learningRate: Float?
    /// Estimated seconds left in the epoch.
    public var epochSecondsLeft: Double?
    public var epochProgress: Double?
    public var message: String?
    /// Figures that were not finite, by name, with their value ("inf", "nan"): JSON has no infinity, so
    /// such a figure is written as null and named here (a diverged validation's perplexity, say).
    public var notFinite: [String: String]?

    /// The event as one line of `log.jsonl`.
    func jsonLine() -> Data {
        var event = self, notFinite: [String: String] = [:]
        func finite<T: BinaryFloatingPoint & LosslessStringConvertible>(_ value: T?, _ name: String) -> T? {
            guard let value, !value.isFinite else { return value }
            notFinite[name] = value.description
            return nil
        }
        event.loss = finite(loss, "loss")
        event.perplexity = finite(perplexity, "perplexity")
        event.bleu = finite(bleu, "bleu")
        event.tokensPerSecond = finite(tokensPerSecond, "tokensPerSecond")
        event.learningRate = finite(learningRate, "learningRate")
        event.epochSecondsLeft = finite(epochSecondsLeft, "epochSecondsLeft")
        event.epochProgress = finite(epochProgress, "epochProgress")
        if !notFinite.isEmpty { event.notFinite = notFinite }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        // Only finite numbers, integers and strings are left, which always encode.
        var line = (try? encoder.encode(event)) ?? Data()
        // The encoder leaves nil figures out; a figure that was not finite is written as null, so the line
        // shows that it was there.
        if !notFinite.isEmpty, var object = (try? JSONSerialization.jsonObject(with: line)) as? [String: Any] {
            for name in notFinite.keys { object[name] = NSNull() }
            line = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? line
        }
        return line + Data("\n".utf8)
    }
}

/// The teacher-forced training loop: batches, Adam with clipping, the learning-rate schedule,
/// validation and early stopping, checkpoints (best and last, written atomically) and exact resume.
///
/// A model directory holds:
///   model.json, model.safetensors   the best weights (what mt-translate loads)
///   last -> last-UPDATE/            model.safetensors, optimizer.safetensors, state.json: for --resume
///   training.yaml                   the resolved options;  log.jsonl  every logged event
public final class Trainer {
    public let options: TrainingOptions
    public let model: Seq2Seq
    let adam: Adam
    /// The weights' moving average, when `--exponential-smoothing` is on.
    let smoothing: ExponentialSmoothing?
    /// The processes training together (one, unless under mpirun); only the leader logs and writes files.
    let processes: ProcessGroup
    /// The gradients of an update's passes so far, when it has more than one (`--accumulate`, `--max-pass-tokens`).
    private let gradientSum = FloatBuffer(count: 0)
    /// What an update builds, kept from one update to the next so that the loop does not allocate.
    private let workspace = UpdateWorkspace()
    /// Under mpirun, the processes share the optimizer step: each receives the summed gradients of its part
    /// of the flat buffer only (a reduce-scatter), updates that part of the weights, moments and average,
    /// and the weights are then exchanged (an all-gather). The two move the bytes of one all-reduce, and
    /// Adam's pass over the 4 buffers, the same on every process before, is divided among them.
    private var sharesOptimizerStep: Bool { processes.canSplit(model.parameters.count) }
    /// This process's part, and its summed gradients.
    private lazy var optimizerPart = processes.part(of: model.parameters.count)
    private lazy var partGradients = FloatBuffer(count: sharesOptimizerStep ? optimizerPart.count : 0)
    /// Whether the moments and the average hold other processes' parts as they were before the last
    /// updates (brought up to date by `gatherOptimizerParts` before anything reads them whole).
    private var optimizerPartsStale = false
    /// Forward and backward passes run so far (more than the updates when batches are cut into passes).
    package private(set) var passesRun = 0
    let directory: String
    let files: ModelDirectory
    public private(set) var state: TrainingState
    let trainSource: TokenSequences, trainTarget: TokenSequences
    let validSource: TokenSequences?, validTarget: TokenSequences?
    let sourceLengths: [UInt16], targetLengths: [UInt16]
    /// Receives every event (the command prints the status line from these).
    public var onEvent: (TrainingEvent) -> Void = { _ in }
    /// Computes validation BLEU for the current weights (decoding, detokenizing and scoring live with the caller).
    var validationBLEU: ((Seq2Seq) throws -> Double)?
    private var log: FileHandle?
    /// The model directory's lock, held as long as the trainer lives (see `TrainingRun.make`).
    var directoryLock: ModelDirectory.Lock?

    init(options: TrainingOptions, model: Seq2Seq, directory: String,
                trainSource: TokenSequences, trainTarget: TokenSequences,
                validSource: TokenSequences? = nil, validTarget: TokenSequences? = nil, processes: ProcessGroup = ProcessGroup()) throws {
        try options.validate()
        precondition(trainSource.count == trainTarget.count && trainSource.count > 0)
        self.options = options
        self.model = model
        self.processes = processes
        self.directory = directory
        files = ModelDirectory(directory)
        self.trainSource = trainSource
        self.trainTarget = trainTarget
        self.validSource = validSource
        self.validTarget = validTarget
        sourceLengths = try trainSource.sentenceLengths()
        targetLengths = try trainTarget.sentenceLengths()
        adam = Adam(parameterCount: model.parameters.count)
        smoothing = options.exponentialSmoothing > 0 ? ExponentialSmoothing(decay: options.exponentialSmoothing, weights: model.parameters) : nil
        state = TrainingState(rng: RandomSource(seed: options.seed ^ 0x5EED),
                              schedule: LearningRateSchedule(kind: options.schedule, baseRate: options.learningRate,
                                                             warmup: options.warmup, factor: options.decayFactor,
                                                             patience: options.decayPatience))
        if processes.isLeader { try files.create() }
    }

    /// Gives every process the leader's weights, optimizer moments, moving average and training state, so
    /// that all start alike, whatever files each one sees (the leader alone reads checkpoints).
    package func synchronizeWithLeader() throws {
        guard processes.size > 1 else { return }
        processes.broadcast(model.parameters.storage.pointer, count: model.parameters.count)
        processes.broadcast(adam.firstMoment.pointer, count: model.parameters.count)
        processes.broadcast(adam.secondMoment.pointer, count: model.parameters.count)
        if let smoothing { processes.broadcast(smoothing.smoothed.pointer, count: model.parameters.count) }
        let leaderState = processes.broadcast(processes.isLeader ? [UInt8](try JSONEncoder().encode(state)) : [])
        if !processes.isLeader {
            state = try JSONDecoder().decode(TrainingState.self, from: Data(leaderState))
            adam.restore(stepCount: state.update - state.skippedUpdates)
        }
    }

    // MARK: Checkpoints

    static let stateFile = "state.json", optimizerFile = "optimizer.safetensors"
    /// The tensor of `optimizerFile` that holds the weights' moving average.
    static let smoothedWeights = "exponential-smoothing"

    /// Restores weights, optimizer moments, schedule, random state and data position from the checkpoint `last`.
    func resume(from source: String) throws {
        let from = ModelDirectory(source)
        let config = try from.loadCheckpointConfig()
        guard config == model.config else {
            throw TrainingError.checkpoint("\(source) holds a model with \(Self.difference(config, model.config)); the options ask for another")
        }
        try from.loadCheckpointWeights(into: model)
        let (moments, _) = try SafeTensors.decode(try from.checkpointFile(Self.optimizerFile), path: from.lastPath + "/" + Self.optimizerFile)
        for (name, buffer) in [("adam.m", adam.firstMoment), ("adam.v", adam.secondMoment)] {
            guard let t = moments[name], t.values.count == model.parameters.count else {
                throw TrainingError.checkpoint("\(from.lastPath)/\(Self.optimizerFile) lacks \(name) for \(model.parameters.count) parameters")
            }
            t.values.withUnsafeBufferPointer { buffer.pointer.update(from: $0.baseAddress!, count: t.values.count) }
        }
        if let smoothing {
            guard let t = moments[Self.smoothedWeights], t.values.count == model.parameters.count else {
                throw TrainingError.checkpoint("\(from.lastPath)/\(Self.optimizerFile) lacks the weights' moving average (\(Self.smoothedWeights))")
            }
            t.values.withUnsafeBufferPointer { smoothing.smoothed.pointer.update(from: $0.baseAddress!, count: t.values.count) }
        }
        let (saved, file) = try from.checkpointJSON(Self.stateFile, as: TrainingState.self)
        try saved.check(file: file, options: options)
        state = saved
        adam.restore(stepCount: state.update - state.skippedUpdates)
        // A resume may change the learning rate; the saved schedule would otherwise go on at the old one.
        if state.schedule.baseRate != options.learningRate { state.schedule.restart(baseRate: options.learningRate) }
    }

    static func difference(_ a: ModelConfig, _ b: ModelConfig) -> String {
        guard let d = a.firstDifference(from: b) else { return "a different configuration" }
        return "\(d.field) = \(d.value) (options: \(d.otherValue))"
    }

    /// Writes the full training state as the model directory's checkpoint `last`.
    func saveLast() throws {
        guard processes.isLeader else { return }
        // Written from the optimizer's own buffers, without copies (memory stays at training's).
        let n = model.parameters.count
        var moments = [SafeTensors.Source(name: "adam.m", shape: [n], values: UnsafeBufferPointer(start: adam.firstMoment.pointer, count: n)),
                       SafeTensors.Source(name: "adam.v", shape: [n], values: UnsafeBufferPointer(start: adam.secondMoment.pointer, count: n))]
        if let smoothing {
            moments.append(SafeTensors.Source(name: Self.smoothedWeights, shape: [n], values: UnsafeBufferPointer(start: smoothing.smoothed.pointer, count: n)))
        }
        try files.saveCheckpoint(update: state.update, model: model, files: [(Self.stateFile, try ModelDirectory.prettyJSON(state))],
                                 tensorFiles: [(Self.optimizerFile, moments)])
    }

    /// Writes the weights that are validated (the moving average, when on) as the model.
    func saveBest() throws {
        guard processes.isLeader else { return }
        try withValidatedWeights { try files.saveModel(model, dtype: options.halfPrecisionWeights ? .f16 : .f32) }
    }

    /// Runs `body` with the weights that validation judges and the model keeps: the moving average when
    /// `--exponential-smoothing` is on, else the weights themselves.
    func withValidatedWeights<R>(_ body: () throws -> R) rethrows -> R {
        guard let smoothing else { return try body() }
        return try smoothing.withSmoothedWeights(in: model.parameters, body)
    }

    // MARK: Logging

    /// Shows the event and appends it to `log.jsonl`. A log that cannot be written fails the run: the
    /// log is the record of the run, and training on without it would leave a gap nobody sees.
    private func emit(_ event: TrainingEvent) throws {
        guard processes.isLeader else { return }
        onEvent(event)
        if log == nil {
            let path = files.logPath
            if !FileManager.default.fileExists(atPath: path) { _ = FileManager.default.createFile(atPath: path, contents: nil) }
            guard let handle = FileHandle(forWritingAtPath: path) else { throw FileError("write", path, "it cannot be opened") }
            log = handle
            _ = try? handle.seekToEnd()
        }
        do { try log?.write(contentsOf: event.jsonLine()) } catch {
            throw FileError("write", files.logPath, (error as NSError).localizedDescription)
        }
    }

    /// A resumed run goes on from its checkpoint, so the logged events of later updates (those trained
    /// after the checkpoint and before the run ended) are cut: they will happen again, and each event
    /// stands in the log once.
    func cutLog(after update: Int) throws {
        struct Update: Decodable { var update: Int }
        guard processes.isLeader else { return }
        guard let text = try? String(contentsOfFile: files.logPath, encoding: .utf8) else { return }
        let lines = text.split(separator: "\n")
        let kept = lines.filter { line in (try? JSONDecoder().decode(Update.self, from: Data(line.utf8)))?.update ?? 0 <= update }
        guard kept.count < lines.count else { return }
        try AtomicFile.write(Data(kept.map { $0 + "\n" }.joined().utf8), to: files.logPath)
    }

    // MARK: Validation

    /// Validation loss (label-smoothed, as trained) and perplexity over the whole validation set.
    func validationLoss() -> (loss: Double, perplexity: Double)? {
        guard let vs = validSource, let vt = validTarget, vs.count > 0 else { return nil }
        var rng = RandomSource(seed: 0)
        var lossSum = 0.0, nllSum = 0.0, tokens = 0
        // Batches of 64 in passes of at most --max-pass-tokens, as training's, so validation needs no more memory.
        let passes = Self.passes(count: vs.count, limit: options.maxPassTokens) { (vs.tokens($0).count, vt.tokens($0).count) }
        for pass in passes.flatMap({ pass in stride(from: pass.lowerBound, to: pass.upperBound, by: 64).map { $0..<min(pass.upperBound, $0 + 64) } }) {
            let batch = Batch(sources: pass.map { Array(vs.tokens($0)) }, targets: pass.map { Array(vt.tokens($0)) })
            let r = model.train(batch, dropout: 0, labelSmoothing: options.labelSmoothing, rng: &rng, computeGradients: false)
            lossSum += r.lossSum
            nllSum += r.nllSum
            tokens += r.tokens
        }
        return (lossSum / Double(tokens), exp(nllSum / Double(tokens)))
    }

    // MARK: The loop

    public enum StopReason: String, Sendable { case maxUpdates = "maximum updates", maxEpochs = "maximum epochs",
                                               maxTime = "time limit", earlyStopping = "early stopping",
                                               interrupted = "interrupted" }

    private let stopFlag = StopFlag()

    /// Asks the loop to stop after the current update (from a signal handler's queue): it then
    /// validates, writes its checkpoints and returns `.interrupted`.
    public func requestStop() { stopFlag.set() }

    /// The stopping rule the state already meets (a resumed run that has ended), nil when there is none.
    public var stopConditionMet: StopReason? {
        if options.maxUpdates > 0 && state.update >= options.maxUpdates { return .maxUpdates }
        if options.maxEpochs > 0 && state.epoch >= options.maxEpochs { return .maxEpochs }
        if options.maxMinutes > 0 && state.trainingSeconds >= options.maxMinutes * 60 { return .maxTime }
        if options.patience > 0 && state.validationsWithoutImprovement >= options.patience { return .earlyStopping }
        return nil
    }

    /// Trains until a stopping rule fires; returns why it stopped.
    @discardableResult
    public func run() throws -> StopReason {
        try cutLog(after: state.update)
        warmUpWorkspaces()
        var windowLoss = 0.0, windowTokens = 0, windowStart = Date(), consecutiveBad = 0
        let sessionStart = Date(), secondsBefore = state.trainingSeconds
        func elapsed() -> Double { secondsBefore + Date().timeIntervalSince(sessionStart) }

        while true {
            if options.maxEpochs > 0 && state.epoch >= options.maxEpochs { return try finish(.maxEpochs) }
            let batches = Batcher.epochBatches(sourceLengths: sourceLengths, targetLengths: targetLengths,
                                               size: options.batchSize, seed: options.seed, epoch: state.epoch)
            while state.batchInEpoch < batches.count {
                let group = state.batchInEpoch..<min(batches.count, state.batchInEpoch + options.accumulate)
                let (result, interrupted, timeUp) = try trainUpdate(on: batches, group: group, stopRequested: stopFlag.isSet,
                                                                    timeUp: options.maxMinutes > 0 && elapsed() >= options.maxMinutes * 60)
                state.batchInEpoch += group.count
                state.update += 1
                let rate = state.schedule.rate(update: state.update - state.skippedUpdates)
                guard result.loss.isFinite, optimizerStep(learningRate: rate) != nil else {
                    state.skippedUpdates += 1
                    consecutiveBad += 1
                    try emit(TrainingEvent(kind: .skipped, update: state.update, epoch: state.epoch,
                                       message: "non-finite loss or gradient: update skipped (\(state.skippedUpdates) so far)"))
                    if consecutiveBad >= 5 {
                        let checkpoint = files.holdsTrainingRun ? "the last good checkpoint is in \(files.lastPath)"
                                                                : "no checkpoint was written before"
                        throw TrainingError.diverged("training diverged: \(consecutiveBad) updates in a row had a non-finite loss; "
                                                     + "\(checkpoint) (try a lower learning rate)")
                    }
                    continue
                }
                consecutiveBad = 0
                windowLoss += result.lossSum
                windowTokens += result.tokens

                if state.update % options.logEvery == 0 {
                    let seconds = Date().timeIntervalSince(windowStart)
                    let perBatch = seconds / Double(options.logEvery)
                    try emit(TrainingEvent(kind: .train, update: state.update, epoch: state.epoch, loss: windowLoss / Double(windowTokens),
                                       tokensPerSecond: Double(windowTokens) / seconds, learningRate: rate,
                                       epochSecondsLeft: perBatch * Double(batches.count - state.batchInEpoch),
                                       epochProgress: Double(state.batchInEpoch) / Double(batches.count)))
                    windowLoss = 0; windowTokens = 0; windowStart = Date()
                }
                if state.update % options.validEvery == 0 {
                    state.trainingSeconds = elapsed()
                    if try validateAndCheckpoint() { return try finish(.earlyStopping) }
                    windowStart = Date()
                }
                if options.maxUpdates > 0 && state.update >= options.maxUpdates { return try finish(.maxUpdates) }
                // Decided together: every process learned of any process's signal or time limit in this update's sums.
                if interrupted { state.trainingSeconds = elapsed(); return try finish(.interrupted) }
                if timeUp { state.trainingSeconds = elapsed(); return try finish(.maxTime) }
            }
            state.epoch += 1
            state.batchInEpoch = 0
        }
    }

    /// One update's forward and backward passes. This process computes its share of each batch of the
    /// group `batches[group]` (the positions p of a batch with p mod N = rank, N processes), each sentence
    /// with the dropout masks of its position, scaled by the whole group's target tokens; the gradients are
    /// summed over the group's batches (`--accumulate`) and then over the processes, so every process ends
    /// with the gradients one process would compute for the whole group. Returns the whole job's loss and
    /// tokens, and whether any process was asked to stop or ran out of time: decisions all must take together.
    /// After the first updates it allocates nothing: the passes, the batch, the sentences read and the
    /// dropout keys live in `workspace`, whose arrays keep their capacity.
    private func trainUpdate(on batches: EpochBatches, group: Range<Int>, stopRequested: Bool, timeUp: Bool) throws
        -> (result: LossResult, interrupted: Bool, timeUp: Bool) {
        let seed = state.rng.next()
        var tokens = 0
        for k in group { for pair in batches[k] { tokens += Int(targetLengths[Int(pair)]) + 1 } }
        let scale = 1 / Float(max(tokens, 1))
        var local = LossResult(lossSum: 0, nllSum: 0, tokens: 0)
        var slices = 0
        let w = workspace
        w.positions.removeAll(keepingCapacity: true)
        w.passes.removeAll(keepingCapacity: true)
        for k in group { appendPasses(of: batches[k], batch: k - group.lowerBound) }
        for (k, range) in w.passes {
            let batch = batches[group.lowerBound + k]
            var longestSource = 0, longestTarget = 0
            for i in range {
                let pair = Int(batch[batch.startIndex + w.positions[i]])
                longestSource = max(longestSource, Int(sourceLengths[pair]))
                longestTarget = max(longestTarget, Int(targetLengths[pair]))
            }
            w.batch.reset(size: range.count, sourceSteps: longestSource, targetSteps: longestTarget + 1)
            w.dropout.rate = options.dropout
            w.dropout.seed = seed &+ UInt64(k) &* 0x9E37_79B9_7F4A_7C15
            w.dropout.sentences.removeAll(keepingCapacity: true)
            for (column, i) in range.enumerated() {
                let pair = Int(batch[batch.startIndex + w.positions[i]])
                try trainSource.readTokens(pair, into: &w.source)
                try trainTarget.readTokens(pair, into: &w.target)
                w.batch.setSentence(column, source: w.source, target: w.target)
                w.dropout.sentences.append(UInt64(w.positions[i]))
            }
            let result = model.train(w.batch, dropout: w.dropout, labelSmoothing: options.labelSmoothing, tokenScale: scale)
            local.lossSum += result.lossSum
            local.nllSum += result.nllSum
            local.tokens += result.tokens
            slices += 1
            passesRun += 1
            if w.passes.count > 1 {
                // Pass by pass into a sum of their own: train() overwrites the gradients.
                gradientSum.reserve(model.gradients.count)
                let sum = gradientSum.pointer, g = model.gradients.storage.pointer
                if slices == 1 { sum.update(from: g, count: model.gradients.count) } else { BLAS.axpy(model.gradients.count, x: g, y: sum) }
            }
        }
        if slices == 0 { model.gradients.zero() }  // a batch smaller than the number of processes left none here
        if slices > 1 { model.gradients.storage.pointer.update(from: gradientSum.pointer, count: model.gradients.count) }
        if sharesOptimizerStep {
            processes.sumIntoPart(model.gradients.storage.pointer, count: model.gradients.count, part: partGradients.pointer)
        } else {
            processes.sum(model.gradients.storage.pointer, count: model.gradients.count)
        }
        let totals = w.totals
        (totals[0], totals[1], totals[2], totals[3], totals[4]) = (local.lossSum, local.nllSum, Double(local.tokens), stopRequested ? 1 : 0, timeUp ? 1 : 0)
        processes.sum(totals, count: 5)
        return (LossResult(lossSum: totals[0], nllSum: totals[1], tokens: Int(totals[2])), totals[3] > 0, totals[4] > 0)
    }

    /// Adam's step (clipped, skipped when the gradient is not finite) and the moving average's, on this
    /// process's part when the processes share the step, followed by the exchange of the weights.
    private func optimizerStep(learningRate: Float) -> Float? {
        guard sharesOptimizerStep else {
            let norm = adam.step(parameters: model.parameters, gradients: model.gradients, learningRate: learningRate, clipNorm: options.clipNorm)
            if norm != nil { smoothing?.update(from: model.parameters) }
            return norm
        }
        let squares = workspace.gradientSquares
        let norm = adam.step(parameters: model.parameters, part: optimizerPart, partGradients: partGradients.pointer,
                             learningRate: learningRate, clipNorm: options.clipNorm) { partSquares in
            squares[0] = partSquares
            processes.sum(squares, count: 1)
            return squares[0]
        }
        guard norm != nil else { return nil }
        processes.gatherParts(model.parameters.storage.pointer, count: model.parameters.count)
        smoothing?.update(from: model.parameters, part: optimizerPart)
        optimizerPartsStale = true
        return norm
    }

    /// Every process's parts of the moments and the average, on every process: before validation (the
    /// average) and checkpoints (all three). Called by every process at the same points.
    private func gatherOptimizerParts() {
        guard optimizerPartsStale else { return }
        processes.gatherParts(adam.firstMoment.pointer, count: model.parameters.count)
        processes.gatherParts(adam.secondMoment.pointer, count: model.parameters.count)
        if let smoothing { processes.gatherParts(smoothing.smoothed.pointer, count: model.parameters.count) }
        optimizerPartsStale = false
    }

    /// The padded size of a pass over some sentences: its rows in the longer of the source and target
    /// sides (target with EOS). The workspaces, and so the memory, grow with it.
    static func paddedTokens(sentences: Int, sourceLength: Int, targetLength: Int) -> Int {
        sentences * max(sourceLength, targetLength + 1)
    }

    /// Cuts `count` sentences, in order, into passes of at most `limit` padded tokens (a longer sentence
    /// goes alone; 0: one pass). Gradients summed over the passes, with the dropout masks and token scale
    /// of the whole batch, give the batch's up to the order of float sums, in memory bounded by `limit`
    /// for the longest batches.
    static func passes(count: Int, limit: Int, lengths: (Int) -> (source: Int, target: Int)) -> [Range<Int>] {
        var passes: [Range<Int>] = []
        Self.passes(count: count, limit: limit, into: &passes, lengths: lengths)
        return passes
    }

    /// The same into `passes`, replacing what it held (its storage is reused).
    static func passes(count: Int, limit: Int, into passes: inout [Range<Int>], lengths: (Int) -> (source: Int, target: Int)) {
        passes.removeAll(keepingCapacity: true)
        guard limit > 0 else {
            if count > 0 { passes.append(0..<count) }
            return
        }
        var start = 0, longestSource = 0, longestTarget = 0
        for i in 0..<count {
            let (source, target) = lengths(i)
            let s = max(longestSource, source), t = max(longestTarget, target)
            if i > start && paddedTokens(sentences: i - start + 1, sourceLength: s, targetLength: t) > limit {
                passes.append(start..<i)
                (start, longestSource, longestTarget) = (i, source, target)
            } else {
                (longestSource, longestTarget) = (s, t)
            }
        }
        if count > start { passes.append(start..<count) }
    }

    /// Appends this process's positions of a batch (p mod N = rank) to `workspace.positions`, and its passes
    /// of at most `--max-pass-tokens` (ranges of those positions, tagged with the batch's place `batch` in
    /// the update's group) to `workspace.passes`.
    private func appendPasses(of pairs: ArraySlice<UInt32>, batch: Int) {
        let w = workspace, first = w.positions.count
        w.positions.append(contentsOf: stride(from: processes.rank, to: pairs.count, by: processes.size))
        Self.passes(count: w.positions.count - first, limit: options.maxPassTokens, into: &w.ranges) { i in
            let pair = Int(pairs[pairs.startIndex + w.positions[first + i]])
            return (Int(sourceLengths[pair]), Int(targetLengths[pair]))
        }
        for range in w.ranges { w.passes.append((batch, first + range.lowerBound..<first + range.upperBound)) }
    }

    /// Allocates the workspaces for the largest pass the data can produce, before the first timed update.
    func warmUpWorkspaces() {
        guard case .sentences(let size) = options.batchSize, let s = sourceLengths.max().map(Int.init),
              let t = targetLengths.max().map(Int.init) else { return }
        guard options.maxPassTokens > 0 else {
            model.warmUp(sentences: min(size, sourceLengths.count), sourceLength: s, targetLength: t, dropout: options.dropout,
                         labelSmoothing: options.labelSmoothing)
            return
        }
        // The most sentences a pass of the longest ones can hold, with both sides as long as the limit allows:
        // a pass of more, shorter sentences can fill either side up to the limit. (A buffer that grew later
        // would grow by a quarter, all of it touched.)
        let longest = Self.paddedTokens(sentences: 1, sourceLength: s, targetLength: t)
        let sentences = max(1, min(size, sourceLengths.count, options.maxPassTokens / longest))
        let length = max(longest, (options.maxPassTokens + sentences - 1) / sentences)
        model.warmUp(sentences: sentences, sourceLength: length, targetLength: length - 1, dropout: options.dropout,
                     labelSmoothing: options.labelSmoothing)
    }

    /// Every process must hold the same weights (each applies the same summed gradients); a difference, which
    /// would mean a process computed differently, stops the run rather than letting the processes drift apart.
    private func checkProcessesAgree() throws {
        guard processes.size > 1 else { return }
        var checksum = 0.0
        let w = model.parameters.storage.pointer
        for i in 0..<model.parameters.count { checksum += Double(w[i]) * Double(i % 7 + 1) }
        let leader = processes.broadcast([checksum])[0]
        let disagree = processes.sum([checksum == leader ? 0 : 1])[0]
        if disagree > 0 {
            throw TrainingError.diverged("the processes' weights differ at update \(state.update) (checksums \(checksum) here, \(leader) on the leader)")
        }
    }

    /// Validates, updates the schedule and early-stopping counters, writes the checkpoints.
    /// Returns true when early stopping says to stop.
    func validateAndCheckpoint() throws -> Bool {
        gatherOptimizerParts()
        // The leader validates (the others wait: validation is a few percent of the time, and one process
        // decoding the whole set keeps BLEU independent of the number of processes); all take its numbers.
        var numbers = [Double](repeating: 0, count: 5)
        if processes.isLeader {
            let (loss, bleu) = try withValidatedWeights { (validationLoss(), try validationBLEU?(model)) }
            numbers = [loss == nil ? 0 : 1, loss?.loss ?? 0, loss?.perplexity ?? 0, bleu == nil ? 0 : 1, bleu ?? 0]
        }
        numbers = processes.broadcast(numbers)
        let validation = numbers[0] > 0 ? (loss: numbers[1], perplexity: numbers[2]) : nil
        let bleu = numbers[3] > 0 ? numbers[4] : nil
        try checkProcessesAgree()
        // Higher is better: BLEU when there is a scorer, else the negated validation loss.
        let score = bleu ?? validation.map { -$0.loss }
        var improved = true
        if let score {
            state.schedule.validated(score: score)
            if let best = state.bestScore, score <= best {
                improved = false
                state.validationsWithoutImprovement += 1
            } else {
                state.bestScore = score
                state.bestUpdate = state.update
                state.validationsWithoutImprovement = 0
            }
        }
        try emit(TrainingEvent(kind: .valid, update: state.update, epoch: state.epoch, loss: validation?.loss,
                           perplexity: validation?.perplexity, bleu: bleu, learningRate: state.schedule.rate(update: state.update),
                           message: improved ? "new best" : "no improvement for \(state.validationsWithoutImprovement) validation(s)"))
        if improved && options.keepBest { try saveBest() }
        if options.keepLast { try saveLast() }
        return options.patience > 0 && state.validationsWithoutImprovement >= options.patience
    }

    private func finish(_ reason: StopReason) throws -> StopReason {
        // A final validation unless the last update just had one.
        if state.update % options.validEvery != 0 {
            _ = try validateAndCheckpoint()
        }
        gatherOptimizerParts()
        if !options.keepBest || state.bestUpdate == 0 { try saveBest() }
        try emit(TrainingEvent(kind: .stop, update: state.update, epoch: state.epoch, bleu: state.bestScore,
                           message: "stopped: \(reason.rawValue); best at update \(state.bestUpdate)"))
        try? log?.close()
        log = nil
        return reason
    }
}

/// The arrays one update fills: after the first updates they have the capacity of the largest, and
/// refilling them allocates nothing.
private final class UpdateWorkspace {
    /// This process's positions in each batch of the update's group, batch after batch.
    var positions: [Int] = []
    /// The update's passes: a batch's place in the group and a range of `positions`.
    var passes: [(batch: Int, range: Range<Int>)] = []
    /// One batch's passes, as ranges of its own positions (while they are computed).
    var ranges: [Range<Int>] = []
    /// The pass being trained, the sentence pair being read into it, and its dropout keys.
    var batch = Batch()
    var source: [Int32] = [], target: [Int32] = []
    var dropout = DropoutKeys(rate: 0, seed: 0, sentences: [])
    /// Loss, NLL, tokens and the two stop flags, summed over the processes.
    let totals = UnsafeMutablePointer<Double>.allocate(capacity: 5)
    /// The gradient's Σg², summed over the processes' parts when they share the optimizer step.
    let gradientSquares = UnsafeMutablePointer<Double>.allocate(capacity: 1)

    deinit {
        totals.deallocate()
        gradientSquares.deallocate()
    }
}

/// A flag set from another thread (a signal handler) and read by the training loop.
final class StopFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    func set() { lock.lock(); value = true; lock.unlock() }
    var isSet: Bool { lock.lock(); defer { lock.unlock() }; return value }
}
