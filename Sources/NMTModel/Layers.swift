import CKernels
import NMTTensor

/// Embedding lookup: rows of a [V, E] table gathered for a list of token ids.
enum Embedding {
    /// out[i, :] = table[ids[i], :]          table [V, E], ids [N], out [N, E]
    static func forward(table: UnsafePointer<Float>, ids: UnsafePointer<Int32>, count: Int, width: Int,
                        into out: UnsafeMutablePointer<Float>) {
        for i in 0..<count { (out + i * width).update(from: table + Int(ids[i]) * width, count: width) }
    }

    /// dTable[ids[i], :] += dOut[i, :]
    static func backward(dTable: UnsafeMutablePointer<Float>, ids: UnsafePointer<Int32>, count: Int, width: Int,
                         dOut: UnsafePointer<Float>) {
        for i in 0..<count { BLAS.axpy(width, x: dOut + i * width, y: dTable + Int(ids[i]) * width) }
    }
}

/// Inverted dropout: each kept value is scaled by 1/(1−p) at training time, so inference needs no change.
/// The mask is drawn once per batch and kept for the backward pass.
final class Dropout {
    let mask = FloatBuffer(count: 0)
    private(set) var active = false

    /// Draws a mask of `count` entries, or switches dropout off when the rate is 0.
    func draw(count: Int, rate: Float, rng: inout RandomSource) {
        active = rate > 0
        guard active else { return }
        mask.reserve(count)
        let keep = 1 / (1 - rate)
        for i in 0..<count { mask[i] = rng.nextUnit() < rate ? 0 : keep }
    }

    /// x ⊙= mask (nothing when inactive). Forward and backward are the same operation.
    func apply(_ x: UnsafeMutablePointer<Float>, count: Int) {
        guard active else { return }
        nmt_mul(x, mask.pointer, x, count)
    }

    func forward(_ x: UnsafeMutablePointer<Float>, count: Int, rate: Float, rng: inout RandomSource) {
        draw(count: count, rate: rate, rng: &rng)
        apply(x, count: count)
    }

    func backward(_ dx: UnsafeMutablePointer<Float>, count: Int) { apply(dx, count: count) }
}
