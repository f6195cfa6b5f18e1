import NMTModel
import NMTTensor

/// Several models decoding as one (Marian's and fairseq's ensembles): every member advances its own
/// rows, and the ensemble's log-probability of token v in row r is the members' average,
///
///     log p(v | r) = (1/M) Σ_m (logits_m[r, v] − logSumExp_m[r]),
///
/// left unnormalized as Marian leaves it. Beam search reads log p as logits − logSumExp, so the ensemble
/// hands it the averaged logits and the averaged logSumExp, whose difference is that average: and for a
/// model with itself, exactly the model's own numbers, so the ensemble scores bit for bit as the model
/// does. Attention weights are the first member's. The members must share the target vocabulary (and, as they decode the same source
/// ids, the source vocabulary).
///
/// Shapes (R rows, Vt target pieces): logits [R, Vt], logSumExp [R].
final class EnsembleDecoder: IncrementalDecoding {
    let members: [any IncrementalDecoding]
    private let averagedLogits = FloatBuffer(count: 0), averagedLogSumExp = FloatBuffer(count: 0)

    init(members: [any IncrementalDecoding]) {
        precondition(members.count >= 2 && Set(members.map(\.targetVocabSize)).count == 1)
        self.members = members
    }

    var targetVocabSize: Int { members[0].targetVocabSize }
    /// The members have the same shortlist (or none), so the same columns.
    var columns: Int { members[0].columns }
    var columnIds: UnsafePointer<Int32>? { members[0].columnIds }
    var rows: Int { members[0].rows }
    var sourceSteps: Int { members[0].sourceSteps }
    var logits: UnsafePointer<Float> { UnsafePointer(averagedLogits.pointer) }
    var logSumExp: UnsafePointer<Float> { UnsafePointer(averagedLogSumExp.pointer) }
    var attention: UnsafePointer<Float> { members[0].attention }

    func append(sources: [[Int32]], beams: [Int]) {
        for member in members { member.append(sources: sources, beams: beams) }
    }

    func step(previous: UnsafePointer<Int32>) {
        for member in members { member.step(previous: previous) }
        let r = rows, v = columns
        averagedLogits.reserve(r * v)
        averagedLogSumExp.reserve(r)
        let logits = averagedLogits.pointer, logSumExp = averagedLogSumExp.pointer, weight = 1 / Float(members.count)
        for (m, member) in members.enumerated() {
            let memberLogits = member.logits, memberLogSumExp = member.logSumExp
            if m == 0 {
                for i in 0..<r * v { logits[i] = memberLogits[i] * weight }
                for row in 0..<r { logSumExp[row] = memberLogSumExp[row] * weight }
            } else {
                for i in 0..<r * v { logits[i] += memberLogits[i] * weight }
                for row in 0..<r { logSumExp[row] += memberLogSumExp[row] * weight }
            }
        }
    }

    func reorder(parents: UnsafePointer<Int32>) {
        for member in members { member.reorder(parents: parents) }
    }

    func compact(kept: UnsafePointer<Int32>, count: Int) {
        for member in members { member.compact(kept: kept, count: count) }
    }

    func replica() -> any IncrementalDecoding {
        EnsembleDecoder(members: members.map { $0.replica() })
    }
}
