import CKernels
import NMTTensor

/// What one forward pass over a batch measured.
package struct LossResult: Sendable {
    /// Label-smoothed cross-entropy summed over real target tokens.
    package var lossSum: Double
    /// Plain negative log-likelihood summed over real target tokens (for perplexity).
    package var nllSum: Double
    package var tokens: Int
    /// The training objective: lossSum / tokens.
    package var loss: Double { lossSum / Double(max(tokens, 1)) }

    package init(lossSum: Double, nllSum: Double, tokens: Int) {
        self.lossSum = lossSum
        self.nllSum = nllSum
        self.tokens = tokens
    }
}

/// The encoder-decoder: its parameters (one flat buffer with named views), their gradients,
/// and the teacher-forced forward and backward passes. Equations and names: docs/model.md.
public final class Seq2Seq {
    package let config: ModelConfig
    package let layout: ParameterLayout
    public let parameters: ParameterBuffer
    package let gradients: ParameterBuffer
    let encoderWeights: EncoderWeights
    let decoderWeights: DecoderWeights
    let encoder: Encoder
    let decoder: Decoder

    /// A model with its weights drawn from `seed`; with `seed` nil, zeros, for a caller that reads every
    /// weight from a file next (loading a model need not draw what it then replaces).
    package init(config: ModelConfig, seed: UInt64? = 1) throws {
        try config.validate()
        self.config = config
        (layout, encoderWeights, decoderWeights) = Seq2Seq.makeLayout(config)
        parameters = ParameterBuffer(layout: layout)
        gradients = ParameterBuffer(layout: layout)
        encoder = Encoder(weights: encoderWeights)
        decoder = Decoder(weights: decoderWeights)
        if let seed {
            var rng = RandomSource(seed: seed)
            initializeParameters(rng: &rng)
        }
    }

    /// Another handle on the same parameters (and gradient buffer) with workspaces of its own, so that
    /// several threads can translate at once. Nothing may train while replicas are in use.
    func replica() -> Seq2Seq { Seq2Seq(sharing: self) }

    private init(sharing other: Seq2Seq) {
        config = other.config
        layout = other.layout
        parameters = other.parameters
        gradients = other.gradients
        encoderWeights = other.encoderWeights
        decoderWeights = other.decoderWeights
        encoder = Encoder(weights: encoderWeights)
        decoder = Decoder(weights: decoderWeights)
    }

    /// Every weight matrix the forward pass multiplies by, with the shape of its product.
    package var matrixProducts: [MatrixProduct] {
        let cgru = decoderWeights.conditionalGRU, deep = decoderWeights.deepOutput
        let grus = [encoderWeights.forwardGRU, encoderWeights.backwardGRU] + encoderWeights.stacked + [cgru.gru1] + decoderWeights.stacked
        return grus.flatMap { [MatrixProduct($0.weightIH), MatrixProduct($0.weightHH)] } + [
            MatrixProduct(decoderWeights.initialState.weight),
            MatrixProduct(cgru.keyWeight),
            // The query and GRU2's recurrent weights are one product (they are stored one after the other).
            MatrixProduct(cgru.queryWeight, outputs: cgru.queryWidth, sensitive: true),
            MatrixProduct(cgru.gru2.weightIH),
            MatrixProduct(deep.weight, sensitive: true),
            MatrixProduct(deep.outputWeight, sensitive: true),
        ]
    }

    /// The precision of the forward pass's matrix products from now on: bf16 and int8 convert and pack
    /// the current weights once (for decoding: training changes the weights and would leave them stale);
    /// f32 drops them. Replicas share the choice. Throws when oneDNN cannot do the products on this CPU.
    public func setPrecision(_ precision: Precision) throws {
        parameters.packed = precision == .f32 ? nil : try PackedWeights(parameters, precision: precision, products: matrixProducts)
    }

    public var precision: Precision { parameters.packed?.precision ?? .f32 }

    /// Rows of the output layer's logits [rows, Vt] that training holds at once: the output layer and the
    /// loss go through the target positions in chunks of this many, so their memory does not grow with the
    /// batch (at 512 rows and 8,000 pieces, 16 MB instead of 32 KB per target position).
    package var outputChunkRows = 512

    /// Training's products in bf16 (mixed precision) or f32; the passes that compute gradients use it.
    package private(set) var mixedPrecision: MixedPrecision?

    public var trainingPrecision: Precision { mixedPrecision == nil ? .f32 : .bf16 }

    package func setTrainingPrecision(_ precision: Precision) {
        precondition(precision != .int8, "training runs in f32 or bf16")
        mixedPrecision = precision == .bf16 ? MixedPrecision(weights: parameters) : nil
    }

    /// The parameter list, in storage order. The names and shapes are those of docs/model.md.
    static func makeLayout(_ c: ModelConfig) -> (ParameterLayout, EncoderWeights, DecoderWeights) {
        var l = ParameterLayout()
        let e = c.embedSize, he = c.encoderHiddenSize, cs = c.contextSize, d = c.decoderHiddenSize, a = c.attentionSize
        let sourceEmbedding = l.add("encoder.embedding.weight", [c.sourceVocabSize, e])
        let forward = GRUWeights.add("encoder.gru0.forward", inputSize: e, hiddenSize: he, to: &l)
        let backward = GRUWeights.add("encoder.gru0.backward", inputSize: e, hiddenSize: he, to: &l)
        let encoderStack = (1..<c.encoderLayers).map { GRUWeights.add("encoder.gru\($0)", inputSize: cs, hiddenSize: cs, to: &l) }
        let targetEmbedding = c.sharedEmbeddings ? sourceEmbedding : l.add("decoder.embedding.weight", [c.targetVocabSize, e])
        let initWeight = l.add("decoder.init.weight", [d, cs])
        let initBias = l.add("decoder.init.bias", [d])
        let gru1 = GRUWeights.add("decoder.gru1", inputSize: e, hiddenSize: d, to: &l)
        let keyWeight = l.add("decoder.attention.key.weight", [a, cs])
        let keyBias = l.add("decoder.attention.key.bias", [a])
        let scoreVector = l.add("decoder.attention.score.weight", [a])
        let queryWeight = l.add("decoder.attention.query.weight", [a, d])
        let gru2HH = l.add("decoder.gru2.weight_hh", [3 * d, d])  // must follow the query weight directly
        let gru2 = GRUWeights.add("decoder.gru2", inputSize: cs, hiddenSize: d, to: &l, weightHHFirst: gru2HH)
        let decoderStack = (3..<3 + c.decoderLayers - 2).map {
            GRUWeights.add("decoder.gru\($0)", inputSize: d, hiddenSize: d, to: &l)
        }
        let deepWeight = l.add("decoder.deep_output.weight", [e, d + e + cs])
        let deepBias = l.add("decoder.deep_output.bias", [e])
        let outputWeight = c.tiedOutput ? targetEmbedding : l.add("decoder.output.weight", [c.targetVocabSize, e])
        let outputBias = l.add("decoder.output.bias", [c.targetVocabSize])
        let enc = EncoderWeights(embedding: sourceEmbedding, forwardGRU: forward, backwardGRU: backward, stacked: encoderStack)
        let dec = DecoderWeights(
            embedding: targetEmbedding,
            initialState: InitialState(weight: initWeight, bias: initBias, contextSize: cs, hiddenSize: d),
            conditionalGRU: ConditionalGRU(gru1: gru1, gru2: gru2, keyWeight: keyWeight, keyBias: keyBias, queryWeight: queryWeight,
                                           scoreVector: scoreVector, attentionSize: a, contextSize: cs),
            stacked: decoderStack,
            deepOutput: DeepOutput(weight: deepWeight, bias: deepBias, outputWeight: outputWeight, outputBias: outputBias,
                                   hiddenSize: d, embedSize: e, contextSize: cs, vocabSize: c.targetVocabSize))
        return (l, enc, dec)
    }

    /// Glorot-uniform matrices, N(0, 0.01)-sized uniform embeddings, zero biases.
    func initializeParameters(rng: inout RandomSource) {
        for view in layout.views {
            let p = parameters[view]
            if view.shape.count == 1 && !view.name.hasSuffix("score.weight") {
                p.update(repeating: 0, count: view.count)
                continue
            }
            let limit: Float
            if view.name.hasSuffix("embedding.weight") {
                limit = 0.1
            } else if view.shape.count == 1 {
                limit = (3 / Float(view.shape[0])).squareRoot()
            } else {
                limit = (6 / Float(view.shape[0] + view.shape[1])).squareRoot()
            }
            for i in 0..<view.count { p[i] = rng.uniform(limit) }
        }
    }

    /// One forward and backward pass on a batch of `sentences` pairs of the given lengths (target
    /// without EOS): the largest shape to come, so that the workspaces are allocated, and their pages
    /// faulted in, before the first timed update instead of growing each time a longer batch arrives.
    /// Uses its own random numbers, so a training run is the same with or without it.
    package func warmUp(sentences: Int, sourceLength: Int, targetLength: Int, dropout: Float, labelSmoothing: Float) {
        let filler = SpecialTokens.unk
        let batch = Batch(sources: Array(repeating: Array(repeating: filler, count: max(1, sourceLength)), count: sentences),
                          targets: Array(repeating: Array(repeating: filler, count: targetLength), count: sentences))
        var rng = RandomSource(seed: 0)
        train(batch, dropout: dropout, labelSmoothing: labelSmoothing, rng: &rng)
    }

    /// The same with the dropout seed drawn from `rng` and the batch's columns as the sentence keys (one
    /// process, the whole batch).
    @discardableResult
    package func train(_ batch: Batch, dropout: Float = 0, labelSmoothing: Float = 0, rng: inout RandomSource,
                       computeGradients: Bool = true) -> LossResult {
        let keys = DropoutKeys(rate: dropout, seed: rng.next(), sentences: (0..<UInt64(batch.size)).map { $0 })
        return train(batch, dropout: keys, labelSmoothing: labelSmoothing, computeGradients: computeGradients)
    }

    /// Forward pass over a batch; with `computeGradients` also the backward pass, which sets
    /// `gradients` to d(loss · tokenScale)/dθ (they are overwritten, not accumulated). `tokenScale` is
    /// 1 / the batch's target tokens unless given: a process that holds a slice of a larger batch passes
    /// 1 / the whole batch's tokens, so that the slices' gradients add up to the batch's.
    @discardableResult
    package func train(_ batch: Batch, dropout: DropoutKeys, labelSmoothing: Float = 0, tokenScale: Float? = nil,
                       computeGradients: Bool = true) -> LossResult {
        if computeGradients, let mixedPrecision {
            return mixedPrecision.run { pass(batch, dropout: dropout, labelSmoothing: labelSmoothing, tokenScale: tokenScale, computeGradients: true) }
        }
        return pass(batch, dropout: dropout, labelSmoothing: labelSmoothing, tokenScale: tokenScale, computeGradients: computeGradients)
    }

    private func pass(_ batch: Batch, dropout: DropoutKeys, labelSmoothing: Float, tokenScale: Float?, computeGradients: Bool) -> LossResult {
        let b = batch.size, ts = batch.sourceSteps, tt = batch.targetSteps
        return batch.sourceTokens.withUnsafeBufferPointer { srcTokens in
            batch.sourceMask.withUnsafeBufferPointer { srcMask in
                batch.targetInput.withUnsafeBufferPointer { tgtIn in
                    batch.targetOutput.withUnsafeBufferPointer { tgtOut in
                        batch.targetMask.withUnsafeBufferPointer { tgtMask in
                            encoder.forward(parameters, tokens: srcTokens.baseAddress!, mask: srcMask.baseAddress!, steps: ts, batch: b,
                                            dropout: dropout)
                            decoder.forward(parameters, annotations: encoder.annotations, sourceMask: srcMask.baseAddress!, sourceSteps: ts,
                                            targetInput: tgtIn.baseAddress!, steps: tt, batch: b, dropout: dropout,
                                            outputChunkRows: outputChunkRows)
                            if computeGradients { gradients.zero() }
                            let (lossSum, nll) = decoder.loss(parameters, computeGradients ? gradients : nil, chunkRows: outputChunkRows,
                                                              targets: tgtOut.baseAddress!, weights: tgtMask.baseAddress!,
                                                              labelSmoothing: labelSmoothing,
                                                              tokenScale: tokenScale ?? 1 / Float(max(batch.targetTokenCount, 1)))
                            if computeGradients {
                                encoder.prepareBackward()
                                decoder.backward(parameters, gradients, annotations: encoder.annotations, sourceMask: srcMask.baseAddress!,
                                                 targetInput: tgtIn.baseAddress!, dAnnotations: encoder.dAnnotations, outputDone: true)
                                encoder.backward(parameters, gradients, tokens: srcTokens.baseAddress!, mask: srcMask.baseAddress!)
                            }
                            return LossResult(lossSum: lossSum, nllSum: nll, tokens: batch.targetTokenCount)
                        }
                    }
                }
            }
        }
    }
}
