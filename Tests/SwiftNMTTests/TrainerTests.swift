import XCTest
@testable import NMTModel
@testable import NMTModelFiles
@testable import NMTTensor
@testable import NMTTraining

final class TrainerTests: XCTestCase {
    static func corpus(_ n: Int, seed: UInt64) -> ([[Int32]], [[Int32]]) {
        var rng = RandomSource(seed: seed)
        let sources = (0..<n).map { _ in (0..<(2 + Int(rng.next() % 8))).map { _ in Int32(4 + rng.next() % 20) } }
        return (sources, sources.map { Array($0.reversed()) })
    }

    static func tinyOptions() -> TrainingOptions {
        var o = TrainingOptions()
        o.embedSize = 16; o.encoderHiddenSize = 16; o.decoderHiddenSize = 24; o.attentionSize = 16
        o.batchSentences = 16; o.learningRate = 3e-3; o.dropout = 0.1; o.validEvery = 10; o.logEvery = 5
        o.maxUpdates = 40; o.patience = 0; o.seed = 9
        return o
    }

    static func makeTrainer(_ options: TrainingOptions, directory: String) throws -> Trainer {
        let (s, t) = Self.corpus(200, seed: 1), (vs, vt) = Self.corpus(30, seed: 2)
        let model = try Seq2Seq(config: options.modelConfig(sourceVocabSize: 24, targetVocabSize: 24, jointVocabulary: true),
                                seed: options.seed)
        return try Trainer(options: options, model: model, directory: directory,
                           trainSource: InMemorySequences(s), trainTarget: InMemorySequences(t),
                           validSource: InMemorySequences(vs), validTarget: InMemorySequences(vt))
    }

    func temporaryDirectory() -> String {
        let path = NSTemporaryDirectory() + "swiftnmt-trainer-\(UUID().uuidString)"
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    /// Training interrupted after a checkpoint and resumed ends with bit-identical weights.
    func testResumeContinuesExactly() throws {
        let straight = try Self.makeTrainer(Self.tinyOptions(), directory: temporaryDirectory())
        var losses: [Double] = []
        straight.onEvent = { if $0.kind == .train, let l = $0.loss { losses.append(l) } }
        try straight.run()
        XCTAssertLessThan(losses.last!, losses.first!, "training loss falls")

        let directory = temporaryDirectory()
        var firstHalf = Self.tinyOptions()
        firstHalf.maxUpdates = 20
        try Self.makeTrainer(firstHalf, directory: directory).run()
        let resumed = try Self.makeTrainer(Self.tinyOptions(), directory: directory)
        try resumed.resume(from: directory)
        XCTAssertEqual(resumed.state.update, 20)
        try resumed.run()
        XCTAssertEqual(resumed.state.update, 40)
        XCTAssertEqual(resumed.model.parameters.storage.array, straight.model.parameters.storage.array)
    }

    /// The moving average follows its formula, swaps in and out of the model exactly, is what validation
    /// judges and the model directory keeps, and resumes exactly.
    func testExponentialSmoothing() throws {
        // The formula, on the tiny model's weights.
        let probe = try Self.makeTrainer(Self.tinyOptions(), directory: temporaryDirectory())
        let weights = probe.model.parameters
        let before = weights.storage.array
        let smoothing = ExponentialSmoothing(decay: 0.75, weights: weights)
        for i in 0..<weights.count { weights.storage[i] += 1 }
        smoothing.update(from: weights)
        let after = weights.storage.array
        XCTAssertEqual(smoothing.smoothed.array, zip(before, after).map { 0.75 * $0 + 0.25 * $1 })
        let seen = smoothing.withSmoothedWeights(in: weights) { weights.storage.array }
        XCTAssertEqual(seen, smoothing.smoothed.array)
        XCTAssertEqual(weights.storage.array, after, "the raw weights come back")

        // A run: validated and saved weights are the average; last/ keeps the raw weights and the average.
        var options = Self.tinyOptions()
        options.exponentialSmoothing = 0.9
        options.keepBest = false  // the model written at the end: the final average
        let directory = temporaryDirectory()
        let trainer = try Self.makeTrainer(options, directory: directory)
        var validationLosses: [Double] = []
        trainer.onEvent = { if $0.kind == .valid, let l = $0.loss { validationLosses.append(l) } }
        try trainer.run()
        let average = try XCTUnwrap(trainer.smoothing).smoothed.array
        XCTAssertNotEqual(average, trainer.model.parameters.storage.array)
        let (checkpoint, _) = try SafeTensors.decode(try ModelDirectory(directory).checkpointFile(Trainer.optimizerFile), path: "optimizer")
        XCTAssertEqual(checkpoint[Trainer.smoothedWeights]?.values, average)
        let saved = try Self.makeTrainer(options, directory: temporaryDirectory())
        try ModelDirectory(directory).loadWeights(into: saved.model)
        XCTAssertEqual(saved.model.parameters.storage.array, average, "the model directory holds the average")
        let raw = try Self.makeTrainer(options, directory: temporaryDirectory())
        try ModelDirectory(directory).loadCheckpointWeights(into: raw.model)
        XCTAssertEqual(raw.model.parameters.storage.array, trainer.model.parameters.storage.array, "last/ holds the raw weights")
        let averageLoss = try XCTUnwrap(trainer.withValidatedWeights { trainer.validationLoss() }).loss
        let rawLoss = try XCTUnwrap(trainer.validationLoss()).loss
        XCTAssertEqual(validationLosses.last, averageLoss, "validation judged the average")
        XCTAssertNotEqual(averageLoss, rawLoss)

        // Resume: the same raw weights and the same average as a run without a stop.
        let resumedDirectory = temporaryDirectory()
        var firstHalf = options
        firstHalf.maxUpdates = 20
        try Self.makeTrainer(firstHalf, directory: resumedDirectory).run()
        let resumed = try Self.makeTrainer(options, directory: resumedDirectory)
        try resumed.resume(from: resumedDirectory)
        try resumed.run()
        XCTAssertEqual(resumed.model.parameters.storage.array, trainer.model.parameters.storage.array)
        XCTAssertEqual(resumed.smoothing?.smoothed.array, average)
    }

    func testCheckpointRoundTripAndMismatchErrors() throws {
        let directory = temporaryDirectory()
        let trainer = try Self.makeTrainer(Self.tinyOptions(), directory: directory)
        try trainer.run()
        let loaded = try ModelDirectory(directory).loadModel()
        XCTAssertEqual(loaded.config, trainer.model.config)
        // A configuration asking for other shapes is refused with the difference named.
        var other = Self.tinyOptions()
        other.decoderHiddenSize = 32
        let mismatched = try Self.makeTrainer(other, directory: temporaryDirectory())
        XCTAssertThrowsError(try mismatched.resume(from: directory)) { error in
            XCTAssertTrue("\(error)".contains("decoderHiddenSize"), "\(error)")
        }
        // A truncated weights file is reported, not loaded.
        let weights = directory + "/" + "model.safetensors"
        let data = try Data(contentsOf: URL(fileURLWithPath: weights))
        try data.prefix(data.count / 2).write(to: URL(fileURLWithPath: weights))
        XCTAssertThrowsError(try ModelDirectory(directory).loadModel()) { error in
            XCTAssertTrue("\(error)".contains("truncated"), "\(error)")
        }
    }

    func testHalfPrecisionWeightsLoadWithinRounding() throws {
        let model = try Seq2Seq(config: ModelConfig(sourceVocabSize: 20, targetVocabSize: 20, embedSize: 8, encoderHiddenSize: 8,
                                                    decoderHiddenSize: 8, attentionSize: 8))
        let directory = temporaryDirectory()
        try ModelDirectory(directory).saveModel(model, dtype: .f16)
        let loaded = try ModelDirectory(directory).loadModel()
        for (a, b) in zip(model.parameters.storage.array, loaded.parameters.storage.array) {
            XCTAssertEqual(a, b, accuracy: abs(a) * 1e-3 + 1e-7)
        }
    }

    /// A non-finite gradient never reaches the weights or the moments.
    func testAdamSkipsNonFiniteGradients() throws {
        let model = try Seq2Seq(config: ModelConfig(sourceVocabSize: 20, targetVocabSize: 20, embedSize: 4, encoderHiddenSize: 4,
                                                    decoderHiddenSize: 4, attentionSize: 4))
        let adam = Adam(parameterCount: model.parameters.count)
        let before = model.parameters.storage.array
        model.gradients.storage.pointer.update(repeating: 0.1, count: model.gradients.count)
        model.gradients.storage[17] = .nan
        XCTAssertNil(adam.step(parameters: model.parameters, gradients: model.gradients, learningRate: 0.1))
        XCTAssertEqual(model.parameters.storage.array, before)
        XCTAssertEqual(adam.firstMoment.array.filter { $0 != 0 }.count, 0)
        XCTAssertEqual(adam.stepCount, 0)
    }

    /// Repeated non-finite losses stop training with a clear message, and nothing non-finite is saved.
    func testDivergenceStopsTraining() throws {
        let directory = temporaryDirectory()
        let trainer = try Self.makeTrainer(Self.tinyOptions(), directory: directory)
        let bias = trainer.model.layout.view(named: "decoder.output.bias")!
        trainer.model.parameters[bias][5] = .infinity
        XCTAssertThrowsError(try trainer.run()) { error in
            XCTAssertTrue("\(error)".contains("diverged"), "\(error)")
        }
        XCTAssertEqual(trainer.state.skippedUpdates, 5)
        XCTAssertFalse(FileManager.default.fileExists(atPath: directory + "/" + "model.safetensors"))
        XCTAssertThrowsError(try ModelDirectory(directory + "/refused").saveModel(trainer.model))
    }
}

/// `--max-pass-tokens`: batches cut into passes whose gradients are summed bound memory, not results.
final class PassTests: XCTestCase {
    func testPassesAreCutInOrderAtTheLimit() {
        // (source, target) lengths; a pass pads to sentences x max(longest source, longest target + 1).
        let lengths = [(3, 4), (3, 4), (3, 4), (10, 2), (1, 1)]
        XCTAssertEqual(Trainer.passes(count: lengths.count, limit: 12) { lengths[$0] }, [0..<2, 2..<3, 3..<4, 4..<5])
        XCTAssertEqual(Trainer.passes(count: lengths.count, limit: 15) { lengths[$0] }, [0..<3, 3..<4, 4..<5])
        XCTAssertEqual(Trainer.passes(count: lengths.count, limit: 0) { lengths[$0] }, [0..<5])
        XCTAssertEqual(Trainer.passes(count: lengths.count, limit: 1) { lengths[$0] }, (0..<5).map { $0..<$0 + 1 })
        XCTAssertEqual(Trainer.passes(count: 0, limit: 12) { lengths[$0] }, [])
    }

    /// The training loop refills one batch for every pass: what a larger pass left in it must not show.
    func testARefilledBatchHoldsOnlyItsOwnSentences() {
        let large: (sources: [[Int32]], targets: [[Int32]]) = ([[4, 5, 6, 7], [8], [9, 10, 11]], [[12, 13, 14, 15, 16], [17, 18], [19]])
        let small: (sources: [[Int32]], targets: [[Int32]]) = ([[20], []], [[21, 22], [23]])
        var batch = Batch()
        for pass in [large, small] {
            batch.reset(size: pass.sources.count, sourceSteps: pass.sources.map(\.count).max()!,
                        targetSteps: pass.targets.map(\.count).max()! + 1)
            for s in pass.sources.indices { batch.setSentence(s, source: pass.sources[s], target: pass.targets[s]) }
        }
        // Worked by hand: time-major, row t * 2 + sentence.
        let (pad, bos, eos) = (SpecialTokens.pad, SpecialTokens.bos, SpecialTokens.eos)
        XCTAssertEqual([batch.size, batch.sourceSteps, batch.targetSteps, batch.targetTokenCount], [2, 1, 3, 5])
        XCTAssertEqual(batch.sourceTokens, [20, pad])
        XCTAssertEqual(batch.sourceMask, [1, 0])
        XCTAssertEqual(batch.targetInput, [bos, bos, 21, 23, 22, pad])
        XCTAssertEqual(batch.targetOutput, [21, 23, 22, eos, eos, pad])
        XCTAssertEqual(batch.targetMask, [1, 1, 1, 1, 1, 0])
        let fresh = Batch(sources: small.sources, targets: small.targets)
        XCTAssertEqual(fresh.targetOutput, batch.targetOutput)
        XCTAssertEqual(fresh.sourceTokens, batch.sourceTokens)
    }

    func testTrainingInPassesIsTrainingInBatches() throws {
        func run(maxPassTokens: Int) throws -> (trainer: Trainer, train: [Double], valid: [Double]) {
            var options = TrainerTests.tinyOptions()
            options.maxPassTokens = maxPassTokens
            let directory = NSTemporaryDirectory() + "swiftnmt-passes-\(UUID().uuidString)"
            addTeardownBlock { try? FileManager.default.removeItem(atPath: directory) }
            let trainer = try TrainerTests.makeTrainer(options, directory: directory)
            var train: [Double] = [], valid: [Double] = []
            trainer.onEvent = { event in
                if event.kind == .train, let l = event.loss { train.append(l) }
                if event.kind == .valid, let l = event.loss { valid.append(l) }
            }
            try trainer.run()
            return (trainer, train, valid)
        }
        // Batches of 16 sentences of 2-9 tokens pad to up to 160 target tokens: at 30, most take several passes.
        let whole = try run(maxPassTokens: 0), cut = try run(maxPassTokens: 30)
        XCTAssertEqual(whole.trainer.passesRun, 40)
        XCTAssertGreaterThan(cut.trainer.passesRun, 3 * 40)
        XCTAssertEqual(whole.train.count, cut.train.count)
        XCTAssertEqual(whole.valid.count, cut.valid.count)
        XCTAssertGreaterThan(whole.valid.count, 2)
        for (a, b) in zip(whole.train + whole.valid, cut.train + cut.valid) { XCTAssertEqual(a, b, accuracy: 1e-5 * abs(a)) }
        let wa = whole.trainer.model.parameters.storage.array, wb = cut.trainer.model.parameters.storage.array
        let largest = wa.map(abs).max()!, worst = zip(wa, wb).map { abs($0 - $1) }.max()!
        XCTAssertLessThan(worst, 1e-4 * largest, "weights differ by \(worst) (largest \(largest))")
    }
}
