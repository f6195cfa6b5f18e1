import CKernels
import NMTTensor

/// What a search needs from a model, and all it may touch: encode sentences and add a number of rows
/// for each, advance every row by one token, and move rows around. (JoeyNMT's search receives a decoder
/// the same way; an ensemble is another implementation.) Sentences may join between steps (`append`)
/// and leave (`compact`): every row's numbers depend only on its own sentence and tokens, never on the
/// other rows, so a translation does not depend on what shares its batch.
package protocol IncrementalDecoding: AnyObject {
    var targetVocabSize: Int { get }
    /// Rows (hypotheses) in the current step.
    var rows: Int { get }
    /// Source positions of every row: the longest source among the rows (shorter ones are masked).
    var sourceSteps: Int { get }
    /// Encodes `sources` (ids without BOS/EOS) and appends `beams[i]` rows for sentence i after the
    /// current rows, each at the sentence's initial state.
    func append(sources: [[Int32]], beams: [Int])
    /// Advances every row by one token (`previous` [R]); afterwards log p(v | row) = logits[row, c] − logSumExp[row]
    /// for the piece v of column c (`columnIds`).
    func step(previous: UnsafePointer<Int32>)
    /// The columns of the logits: Vt, or with a shortlist the number of candidate pieces of the rows' sentences.
    var columns: Int { get }
    /// The piece of each column [columns], nil when column c is piece c (no shortlist).
    var columnIds: UnsafePointer<Int32>? { get }
    /// The last step's logits [R, columns]; with a shortlist, −∞ where a piece is not among the row's sentence's candidates.
    var logits: UnsafePointer<Float> { get }
    /// The last step's log Σ_v exp(logits[row, v]) [R].
    var logSumExp: UnsafePointer<Float> { get }
    /// The last step's attention weights [R, Ts].
    var attention: UnsafePointer<Float> { get }
    /// Row i continues the hypothesis of row parents[i] (of the same sentence).
    func reorder(parents: UnsafePointer<Int32>)
    /// Keeps only the rows `kept` (in that order), e.g. those of unfinished sentences.
    func compact(kept: UnsafePointer<Int32>, count: Int)
    /// Another decoder over the same weights with workspaces of its own, for another thread.
    func replica() -> any IncrementalDecoding
}

extension IncrementalDecoding {
    /// Drops every row, then sets up `beams` rows for each sentence: the rows of sentence s are s·k … s·k+k−1.
    package func start(sources: [[Int32]], beams: Int) {
        removeAll()
        append(sources: sources, beams: [Int](repeating: beams, count: sources.count))
    }

    package func removeAll() {
        var none: Int32 = 0
        compact(kept: &none, count: 0)
    }
}

/// The model's decoder one target position at a time, for many rows at once: the same layer functions
/// as `Decoder.forward` (the conditional GRU step, the stacked GRU cells, the deep output), called on the
/// rows of one step instead of a whole target prefix. The k beams of sentence s are rows s·k … s·k+k−1,
/// so each step is one GEMM per layer over all rows. Beam search moves rows around with `reorder` (by
/// parent index) and drops the rows of finished sentences with `compact`.
///
/// The source side is a pool: each sentence's annotations and keys are stored once, for all its rows,
/// and each row knows where its sentence's positions start and how many there are
/// (`nmt_attention_forward_pooled`). Sentences that join (`append`) are encoded on their own and added at
/// the pool's end; those that leave only stop being pointed at. So joining and leaving copy nothing of
/// the other sentences (an in-flight batch of a server has sentences joining and leaving at most steps);
/// the pool is repacked only when it is full or more than half of it is unused.
///
/// Shapes (R rows, P pooled source positions, Ts the longest source of the rows): pooledAnnotations
/// [P, C], pooledKeys [P, A], rowSourceStarts and rowSourceLengths [R], states[l] [R, D], logits [R, Vt],
/// logSumExp [R], attention [R, Ts].
package final class IncrementalDecoder: IncrementalDecoding {
    package let model: Seq2Seq
    package private(set) var rows = 0, sourceSteps = 0
    // The source side: each sentence's positions once, `pooledPositions` of them in use (live or not).
    private var pooledAnnotations = FloatBuffer(count: 0), pooledKeys = FloatBuffer(count: 0)
    private var spareAnnotations = FloatBuffer(count: 0), spareKeys = FloatBuffer(count: 0)
    private var pooledPositions = 0, pooledCapacity = 0
    /// Per row, where its sentence's positions start in the pool and how many there are.
    private var rowSourceStarts: [Int32] = [], rowSourceLengths: [Int32] = []
    private var spareRowSourceStarts: [Int32] = [], spareRowSourceLengths: [Int32] = []
    // Per sentence, at the start: [B, C], [Ts·B, A], [B, D].
    private let mean = FloatBuffer(count: 0), sentenceKeys = FloatBuffer(count: 0), initial = FloatBuffer(count: 0)
    // One step.
    private let embedded = FloatBuffer(count: 0)          // [R, E]
    private let inputProjection = FloatBuffer(count: 0)   // [R, 3D]: GRU1's, then each stacked layer's
    private let conditional = ConditionalGRUActivations()  // one step of R rows
    /// states[l]: current state of decoder layer l (0: the conditional GRU's output).
    private var states: [FloatBuffer] = [], nextStates: [FloatBuffer] = []
    private let deep = DeepOutput.Activations()
    private let rowLogSumExp = FloatBuffer(count: 0)
    /// With a shortlist: the candidate pieces of each sentence that has rows, the sorted union of them
    /// (the columns), the output layer's rows for the columns, and per sentence a mask over the columns
    /// (0 for its own candidates, −∞ for the others').
    package var shortlist: Shortlist? {
        didSet { removeAll() }
    }
    private var candidateSets: [[Int32]] = [], rowCandidateSet: [Int32] = [], spareRowCandidateSet: [Int32] = []
    private var candidateMarks: [Bool] = []
    /// The columns' pieces [Vt at most], sorted; `columnCount` of them are in use.
    private let candidateColumns: UnsafeMutablePointer<Int32>
    private var columnCount = 0
    private let columnWeight = FloatBuffer(count: 0), columnBias = FloatBuffer(count: 0), columnMasks = FloatBuffer(count: 0)
    /// The column weights packed for the model's precision (bf16, int8), when it is not f32.
    private var packedColumnWeight: PackedMatrix?

    package init(model: Seq2Seq) {
        self.model = model
        candidateColumns = .allocate(capacity: model.config.targetVocabSize)
        states = (0..<model.config.decoderLayers - 1).map { _ in FloatBuffer(count: 0) }
        nextStates = (0..<model.config.decoderLayers - 1).map { _ in FloatBuffer(count: 0) }
    }

    deinit { candidateColumns.deallocate() }

    package func replica() -> any IncrementalDecoding {
        let copy = IncrementalDecoder(model: model.replica())
        copy.shortlist = shortlist
        return copy
    }

    private var layers: DecoderWeights { model.decoderWeights }
    package var targetVocabSize: Int { model.config.targetVocabSize }
    package var columns: Int { shortlist == nil ? model.config.targetVocabSize : columnCount }
    package var columnIds: UnsafePointer<Int32>? { shortlist == nil ? nil : UnsafePointer(candidateColumns) }
    package var logits: UnsafePointer<Float> { UnsafePointer(deep.logits.pointer) }
    package var logSumExp: UnsafePointer<Float> { UnsafePointer(rowLogSumExp.pointer) }
    package var attention: UnsafePointer<Float> { UnsafePointer(conditional.alpha.pointer) }

    package func append(sources: [[Int32]], beams: [Int]) {
        precondition(sources.count == beams.count)
        guard !sources.isEmpty else { return }
        let batch = Batch(sources: sources, targets: sources.map { _ in [] })
        batch.sourceTokens.withUnsafeBufferPointer { tokens in
            batch.sourceMask.withUnsafeBufferPointer { sourceMask in
                model.encoder.forward(model.parameters, tokens: tokens.baseAddress!, mask: sourceMask.baseAddress!,
                                      steps: batch.sourceSteps, batch: batch.size, dropout: .none)
                append(encoded: model.encoder.annotations, sourceMask: sourceMask.baseAddress!, sourceSteps: batch.sourceSteps,
                       sourceLengths: sources.map { Int32($0.count) }, beams: beams)
            }
        }
        if let shortlist { appendCandidates(shortlist, sources: sources, beams: beams) }
    }

    /// Adds the new sentences' candidate sets and lays out the columns anew: the union of the sets that
    /// rows still use, the output layer's weights and biases of those pieces, and each set's mask.
    private func appendCandidates(_ shortlist: Shortlist, sources: [[Int32]], beams: [Int]) {
        let v = targetVocabSize, e = model.config.embedSize, p = model.parameters, deepOutput = layers.deepOutput
        if candidateMarks.count != v { candidateMarks = [Bool](repeating: false, count: v) }
        // Drop the sets no row uses any more, then add the new ones.
        var used = [Int32](repeating: -1, count: candidateSets.count), kept: [[Int32]] = []
        for i in rowCandidateSet.indices {
            let set = Int(rowCandidateSet[i])
            if used[set] < 0 {
                used[set] = Int32(kept.count)
                kept.append(candidateSets[set])
            }
            rowCandidateSet[i] = used[set]
        }
        candidateSets = kept
        for (source, k) in zip(sources, beams) {
            let set = Int32(candidateSets.count)
            candidateSets.append(shortlist.candidates(for: source, marks: &candidateMarks))
            for _ in 0..<k { rowCandidateSet.append(set) }
        }
        // The union, sorted, and each set's mask over it.
        for set in candidateSets { for id in set { candidateMarks[Int(id)] = true } }
        columnCount = 0
        for id in 0..<v where candidateMarks[id] {
            candidateColumns[columnCount] = Int32(id)
            columnCount += 1
            candidateMarks[id] = false
        }
        let n = columnCount
        columnWeight.reserve(n * e)
        columnBias.reserve(n)
        columnMasks.reserve(candidateSets.count * n)
        let weight = p[deepOutput.outputWeight], bias = p[deepOutput.outputBias]
        for c in 0..<n {
            let id = Int(candidateColumns[c])
            (columnWeight.pointer + c * e).update(from: weight + id * e, count: e)
            columnBias[c] = bias[id]
        }
        // Packing once per change of the columns (about a millisecond for 4,000 of them) pays for itself
        // within a step or two.
        packedColumnWeight = nil
        if let precision = p.packed?.sensitivePrecision, n > 0 {
            packedColumnWeight = try? PackedMatrix(precision, weight: columnWeight.pointer, outputs: n, inputs: e)
        }
        for (i, set) in candidateSets.enumerated() {
            let mask = columnMasks.pointer + i * n
            mask.update(repeating: -.infinity, count: n)
            // Both lists are sorted: one merge finds each candidate's column.
            var c = 0
            for id in set {
                while candidateColumns[c] != id { c += 1 }
                mask[c] = 0
            }
        }
    }

    /// Appends `beams[s]` rows for each new sentence s from the encoder's output (`encoded` [Tn·B, C],
    /// `sourceMask` [Tn·B], time-major): keys and initial states are computed for the new sentences at
    /// once, their positions copied into the pool (without the padding), and their rows added pointing at them.
    func append(encoded: UnsafePointer<Float>, sourceMask: UnsafePointer<Float>, sourceSteps tn: Int, sourceLengths: [Int32],
                beams: [Int]) {
        let c = model.config, d = c.decoderHiddenSize, p = model.parameters, cs = c.contextSize, a = c.attentionSize
        let cgru = layers.conditionalGRU, b = beams.count
        let old = rows, r = old + beams.reduce(0, +), ts = max(sourceSteps, tn)
        for (buffer, size) in [(mean, b * cs), (sentenceKeys, tn * b * a), (initial, b * d),
                               (embedded, r * c.embedSize), (inputProjection, r * 3 * d), (rowLogSumExp, r)] {
            buffer.reserve(size)
        }
        conditional.reserve(cgru, steps: 1, batch: r, sourceSteps: ts, gradients: false)
        deep.reserve(layers.deepOutput, rows: r, gradients: false)
        cgru.fillQueryBias(p, into: conditional.queryBias.pointer)
        layers.initialState.forward(p, annotations: encoded, mask: sourceMask, sourceSteps: tn, batch: b, mean: mean.pointer,
                                    into: initial.pointer)
        cgru.projectKeys(p, annotations: encoded, rows: tn * b, into: sentenceKeys.pointer)
        let added = sourceLengths.reduce(0) { $0 + Int($1) }
        if pooledPositions + added > pooledCapacity { repackPool(live: livePositions(), room: added) }
        for s in 0..<b {
            let start = pooledPositions, length = Int(sourceLengths[s])
            for t in 0..<length {
                let from = t * b + s, to = start + t
                (pooledAnnotations.pointer + to * cs).update(from: encoded + from * cs, count: cs)
                (pooledKeys.pointer + to * a).update(from: sentenceKeys.pointer + from * a, count: a)
            }
            pooledPositions += length
            for _ in 0..<beams[s] {
                rowSourceStarts.append(Int32(start))
                rowSourceLengths.append(Int32(length))
            }
        }
        for l in states.indices {
            nextStates[l].reserve(r * d)
            nextStates[l].pointer.update(from: states[l].pointer, count: old * d)
            var row = old
            for s in 0..<b {
                for _ in 0..<beams[s] {
                    (nextStates[l].pointer + row * d).update(from: initial.pointer + s * d, count: d)
                    row += 1
                }
            }
            swap(&states[l], &nextStates[l])
            nextStates[l].reserve(r * d)
        }
        rows = r
        sourceSteps = ts
    }

    /// The pooled positions the rows point at. The rows of a sentence are consecutive and share one
    /// start, so a sentence's positions are counted (and, in `repackPool`, copied) at its first row.
    private func livePositions() -> Int {
        var live = 0
        for i in 0..<rows where i == 0 || rowSourceStarts[i] != rowSourceStarts[i - 1] { live += Int(rowSourceLengths[i]) }
        return live
    }

    /// Copies the `live` positions the rows point at to the start of a pool with room for `room` more,
    /// and points the rows there.
    private func repackPool(live: Int, room: Int) {
        let cs = model.config.contextSize, a = model.config.attentionSize
        // Twice what is needed, so that sentences joining one or a few at a time repack rarely.
        let capacity = 2 * (live + room)
        spareAnnotations.reserve(capacity * cs)
        spareKeys.reserve(capacity * a)
        var next = 0, previousStart: Int32 = -1, newStart: Int32 = 0
        for i in 0..<rows {
            let start = rowSourceStarts[i], length = Int(rowSourceLengths[i])
            if start != previousStart {
                previousStart = start
                newStart = Int32(next)
                (spareAnnotations.pointer + next * cs).update(from: pooledAnnotations.pointer + Int(start) * cs, count: length * cs)
                (spareKeys.pointer + next * a).update(from: pooledKeys.pointer + Int(start) * a, count: length * a)
                next += length
            }
            rowSourceStarts[i] = newStart
        }
        swap(&pooledAnnotations, &spareAnnotations)
        swap(&pooledKeys, &spareKeys)
        pooledPositions = next
        pooledCapacity = capacity
    }

    package func step(previous: UnsafePointer<Int32>) {
        let c = model.config, p = model.parameters, cgru = layers.conditionalGRU
        let r = rows, v = c.targetVocabSize
        Embedding.forward(table: p[layers.embedding], ids: previous, count: r, width: c.embedSize, into: embedded.pointer)
        cgru.gru1.projectInputs(p, embedded.pointer, rows: r, into: inputProjection.pointer)
        var step = conditional.step(0, cgru, inputProjection: inputProjection.pointer, sourceSteps: sourceSteps)
        step.previous = UnsafePointer(states[0].pointer)
        step.state = nextStates[0].pointer
        rowSourceStarts.withUnsafeBufferPointer { starts in
            rowSourceLengths.withUnsafeBufferPointer { lengths in
                cgru.forward(p, queryBias: conditional.queryBias.pointer, rows: r,
                             source: ConditionalGRU.PooledSource(keys: pooledKeys.pointer, annotations: pooledAnnotations.pointer,
                                                                 starts: starts.baseAddress!, lengths: lengths.baseAddress!, steps: sourceSteps),
                             step: step)
            }
        }
        // The stacked layers reuse the conditional GRU's scratch: nothing goes backward in search.
        for (l, layer) in layers.stacked.enumerated() {
            layer.projectInputs(p, nextStates[l].pointer, rows: r, into: inputProjection.pointer)
            layer.step(p, inputProjection: inputProjection.pointer, previous: states[l + 1].pointer, rows: r, mask: nil,
                       recurrent: conditional.recurrent1.pointer, cache: conditional.cache1.pointer, into: nextStates[l + 1].pointer)
        }
        swap(&states, &nextStates)
        if shortlist != nil {
            let n = columnCount
            layers.deepOutput.forward(p, rows: r, top: states.last!.pointer, embedded: embedded.pointer, context: conditional.contexts.pointer,
                                      dropout: .none, deep,
                                      output: DeepOutput.Columns(weight: columnWeight.pointer, bias: columnBias.pointer, count: n,
                                                                 packed: packedColumnWeight))
            for row in 0..<r {
                let rowLogits = deep.logits.pointer + row * n
                BLAS.axpy(n, x: columnMasks.pointer + Int(rowCandidateSet[row]) * n, y: rowLogits)
                rowLogSumExp[row] = nmt_log_sum_exp(rowLogits, n)
            }
            return
        }
        layers.deepOutput.forward(p, rows: r, top: states.last!.pointer, embedded: embedded.pointer, context: conditional.contexts.pointer,
                                  dropout: .none, deep)
        for row in 0..<r { rowLogSumExp[row] = nmt_log_sum_exp(deep.logits.pointer + row * v, v) }
    }

    package func reorder(parents: UnsafePointer<Int32>) {
        let d = model.config.decoderHiddenSize
        for l in states.indices {
            let from = states[l].pointer, to = nextStates[l].pointer
            for row in 0..<rows { (to + row * d).update(from: from + Int(parents[row]) * d, count: d) }
            swap(&states[l], &nextStates[l])
        }
    }

    /// Keeps the states and source pointers of the kept rows, so finished sentences cost nothing in later
    /// steps; the attention's width shrinks to the longest kept source. Their pooled positions stay until
    /// the pool is repacked.
    package func compact(kept: UnsafePointer<Int32>, count: Int) {
        let d = model.config.decoderHiddenSize
        spareRowSourceStarts.removeAll(keepingCapacity: true)
        spareRowSourceLengths.removeAll(keepingCapacity: true)
        for i in 0..<count {
            spareRowSourceStarts.append(rowSourceStarts[Int(kept[i])])
            spareRowSourceLengths.append(rowSourceLengths[Int(kept[i])])
        }
        swap(&rowSourceStarts, &spareRowSourceStarts)
        swap(&rowSourceLengths, &spareRowSourceLengths)
        // The columns stay until sentences join: a superset of what the kept rows need, each row masked to its own.
        if shortlist != nil {
            spareRowCandidateSet.removeAll(keepingCapacity: true)
            for i in 0..<count { spareRowCandidateSet.append(rowCandidateSet[Int(kept[i])]) }
            swap(&rowCandidateSet, &spareRowCandidateSet)
            if count == 0 {
                candidateSets.removeAll()
                columnCount = 0
            }
        }
        for l in states.indices {
            for i in 0..<count { (nextStates[l].pointer + i * d).update(from: states[l].pointer + Int(kept[i]) * d, count: d) }
            swap(&states[l], &nextStates[l])
        }
        rows = count
        sourceSteps = count == 0 ? 0 : max(1, Int(rowSourceLengths.max()!))
        let live = livePositions()
        if count == 0 {
            pooledPositions = 0
        } else if pooledPositions > 2 * live {
            repackPool(live: live, room: 0)
        }
    }
}
