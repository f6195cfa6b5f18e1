import Foundation
import NMTModel
import NMTTensor
import NMTText

/// Speed measurements printed by `scripts/bench.sh` (through `mt-bench`).
public enum Benchmarks {
    static func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

    /// The machine's single-precision GEMM rate on an n×n×n product with the current BLAS threads:
    /// the best of `repeats` timed runs after one warm-up, in GFLOP/s.
    public static func sgemmGFlops(size n: Int = 2048, repeats: Int = 5) -> Double {
        var rng = RandomSource(seed: 1)
        let a = FloatBuffer(count: n * n), b = FloatBuffer(count: n * n), c = FloatBuffer(count: n * n)
        for i in 0..<n * n { a[i] = rng.uniform(1); b[i] = rng.uniform(1) }
        var best = Double.infinity
        for run in 0...repeats {
            let start = now()
            BLAS.gemm(m: n, n: n, k: n, a: a.pointer, lda: n, b: b.pointer, ldb: n, beta: 0, c: c.pointer, ldc: n)
            let elapsed = now() - start
            if run > 0 { best = min(best, elapsed) }
        }
        return 2 * Double(n) * Double(n) * Double(n) / best / 1e9
    }

    /// The rate of the decoder's matrix products in each precision, on one thread, as one decoder step
    /// over `rows` hypotheses runs them (the reference model's shapes: the products of one step and the
    /// encoder's, each with the bias, int8 with its conversions): GFLOP/s per precision, nil where this
    /// CPU cannot. The limit a precision sets on translation is this rate over the FLOPs per sentence.
    public static func decoderProductRates(rows: Int = 80, repeats: Int = 200) throws -> [(Precision, Double?)] {
        let model = try Seq2Seq(config: .reference(), seed: 1)
        let products = model.matrixProducts
        let flops = products.reduce(0.0) { $0 + 2 * Double(rows * $1.outputs * $1.inputs) }
        let input = FloatBuffer(count: rows * products.map(\.inputs).max()!)
        let output = FloatBuffer(count: rows * products.map(\.outputs).max()!)
        var rng = RandomSource(seed: 2)
        for i in 0..<rows * products.map(\.inputs).max()! { input[i] = rng.uniform(1) }
        let threads = BLAS.threads
        BLAS.threads = 1
        defer { BLAS.threads = threads }
        return try [Precision.f32, .bf16, .int8].map { precision in
            if precision == .bf16 && !CPUFeatures.hasBF16 { return (precision, nil) }
            let packed = precision == .f32 ? nil : try PackedWeights(model.parameters, precision: precision, products: products.map {
                MatrixProduct($0.weight, outputs: $0.outputs, inputs: $0.inputs)  // every product in this precision
            })
            var best = Double.infinity
            for run in 0...3 {
                let start = now()
                for _ in 0..<repeats / 4 {
                    for product in products {
                        if let matrix = packed?[product.weight] {
                            matrix.linear(input.pointer, rows: rows, ldx: product.inputs, bias: nil, into: output.pointer, ldy: product.outputs)
                        } else {
                            BLAS.linear(input.pointer, rows: rows, inputs: product.inputs, weight: model.parameters[product.weight], bias: nil,
                                        outputs: product.outputs, into: output.pointer)
                        }
                    }
                }
                if run > 0 { best = min(best, (now() - start) / Double(repeats / 4)) }
            }
            return (precision, flops / best / 1e9)
        }
    }

    public struct TrainingResult: Sendable {
        public var tokensPerSecond: Double
        public var gflops: Double
        public var secondsPerBatch: Double
        var batches: Int
        public var tokensPerBatch: Double
    }

    /// Synthetic batches as the trainer makes them: pairs with source lengths uniform in `lengths`,
    /// target lengths within ±2 of the source, sorted by length and cut into batches of `batchSize`.
    static func syntheticBatches(config: ModelConfig, batchSize: Int, batches: Int,
                                        lengths: ClosedRange<Int>, seed: UInt64) -> [Batch] {
        var rng = RandomSource(seed: seed)
        let vocab = UInt64(config.targetVocabSize - 4)
        var pairs: [([Int32], [Int32])] = (0..<batchSize * batches).map { _ in
            let s = lengths.lowerBound + Int(rng.next() % UInt64(lengths.count))
            let t = min(lengths.upperBound, max(lengths.lowerBound, s + Int(rng.next() % 5) - 2))
            return ((0..<s).map { _ in Int32(4 + rng.next() % vocab) }, (0..<t).map { _ in Int32(4 + rng.next() % vocab) })
        }
        pairs.sort { ($0.1.count, $0.0.count) < ($1.1.count, $1.0.count) }
        return stride(from: 0, to: pairs.count, by: batchSize).map { start in
            let slice = pairs[start..<start + batchSize]
            return Batch(sources: slice.map(\.0), targets: slice.map(\.1))
        }
    }

    /// The first `batches` batches of `batchSize` sentence pairs of epoch 0 of a preprocessed training
    /// set, in the order mt-train would use them.
    public static func realBatches(dataDirectory: String, batchSize: Int, batches: Int) throws -> (ModelConfig, [Batch]) {
        let manifest = try PreprocessManifest.load(directory: dataDirectory)
        let src = manifest.request.sourceLang, tgt = manifest.request.targetLang
        guard let train = manifest.split("train"), let s = train.sides[src], let t = train.sides[tgt],
              let vs = manifest.sentencepiece.vocabSizes[src], let vt = manifest.sentencepiece.vocabSizes[tgt] else {
            throw TrainingError.badConfig("\(dataDirectory) has no training split")
        }
        let source = try TokenDataset(path: dataDirectory + "/" + s.dataset), target = try TokenDataset(path: dataDirectory + "/" + t.dataset)
        let order = Batcher.epochBatches(sourceLengths: try source.sentenceLengths(), targetLengths: try target.sentenceLengths(), size: .sentences(batchSize),
                                         seed: 1, epoch: 0)
        var config = ModelConfig.reference(vocabSize: vs)
        config.targetVocabSize = vt
        config.sharedEmbeddings = manifest.sentencepiece.joint
        let data = (0..<min(batches, order.count)).map { k in
            let indices = order[k].map { Int($0) }
            return Batch(sources: indices.map { Array(source.tokens($0)) }, targets: indices.map { Array(target.tokens($0)) })
        }
        return (config, data)
    }

    /// Forward + backward + Adam update over the given batches (synthetic ones of lengths 10–20
    /// when nil); timed after a warm-up on the longest batch.
    public static func training(config: ModelConfig, batchSize: Int = 64, batches: Int = 12,
                                lengths: ClosedRange<Int> = 10...20, data given: [Batch]? = nil, precision: Precision = .f32) throws -> TrainingResult {
        let model = try Seq2Seq(config: config, seed: 1)
        model.setTrainingPrecision(precision)
        let adam = Adam(parameterCount: model.parameters.count)
        let data = given ?? syntheticBatches(config: config, batchSize: batchSize, batches: batches, lengths: lengths, seed: 3)
        var rng = RandomSource(seed: 5)
        // Workspaces for a batch as large in every dimension as any timed one, as the trainer allocates them.
        let lengths = data.map(lengthsOf)
        model.warmUp(sentences: data.map(\.size).max()!, sourceLength: lengths.flatMap(\.0).max()!,
                     targetLength: lengths.flatMap(\.1).max()!, dropout: 0.1, labelSmoothing: 0.1)
        model.train(data.first!, dropout: 0.1, labelSmoothing: 0.1, rng: &rng)
        // Token and FLOP counts are taken before the clock starts; the timed loop only trains.
        let tokens = data.reduce(0) { $0 + $1.targetTokenCount }
        let flops = lengths.reduce(0.0) { $0 + FlopCount.trainingStep(config, sourceLengths: $1.0, targetLengths: $1.1) }
        let start = now()
        for batch in data {
            model.train(batch, dropout: 0.1, labelSmoothing: 0.1, rng: &rng)
            adam.step(parameters: model.parameters, gradients: model.gradients, learningRate: 1e-4, clipNorm: 1)
        }
        let elapsed = now() - start
        return TrainingResult(tokensPerSecond: Double(tokens) / elapsed, gflops: flops / elapsed / 1e9,
                              secondsPerBatch: elapsed / Double(data.count), batches: data.count,
                              tokensPerBatch: Double(tokens) / Double(data.count))
    }

    /// Real source and target lengths of each sentence of a batch (target without EOS).
    static func lengthsOf(_ batch: Batch) -> ([Int], [Int]) {
        let b = batch.size
        let s = (0..<b).map { i in (0..<batch.sourceSteps).filter { batch.sourceMask[$0 * b + i] != 0 }.count }
        let t = (0..<b).map { i in (0..<batch.targetSteps).filter { batch.targetMask[$0 * b + i] != 0 }.count - 1 }
        return (s, t)
    }
}
