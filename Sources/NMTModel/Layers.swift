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

/// Where a batch's dropout masks come from: a seed drawn once per update, and each batch column's
/// sentence key (its position in the global batch). Entry (t, column, i) of a mask is a hash of (seed,
/// the mask's site, the column's key, t, i), not the next number of a sequence: so a sentence gets the
/// same masks whichever slice of the batch holds it, which is what lets several processes split a batch
/// and still compute the gradients of the whole (data-parallel training).
package struct DropoutKeys {
    package var rate: Float
    package var seed: UInt64
    /// One key per batch column.
    package var sentences: [UInt64]

    package init(rate: Float, seed: UInt64, sentences: [UInt64]) {
        self.rate = rate
        self.seed = seed
        self.sentences = sentences
    }

    /// No dropout (nothing is drawn, so no keys are needed).
    package static let none = DropoutKeys(rate: 0, seed: 0, sentences: [])

    /// splitmix64's finalizer: a good 64-bit mix, fast enough to call once per mask entry.
    @inline(__always) static func mix(_ x: UInt64) -> UInt64 {
        var z = x &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Inverted dropout: each kept value is scaled by 1/(1−p) at training time, so inference needs no change.
/// The mask is drawn once per batch and kept for the backward pass.
final class Dropout {
    /// Which mask of the model this is: masks of different sites are independent.
    let site: UInt64
    let mask = FloatBuffer(count: 0)
    private(set) var active = false

    init(site: UInt64) { self.site = site }

    /// Draws the mask of a time-major [steps, batch, width] activation (`count` = steps·batch·width, the
    /// batch being `keys.sentences.count`), or switches dropout off when the rate is 0.
    func draw(count: Int, width: Int, keys: DropoutKeys) {
        active = keys.rate > 0
        guard active else { return }
        mask.reserve(count)
        let keep = 1 / (1 - keys.rate), threshold = UInt64(Double(keys.rate) * 0x1p24)
        let batch = keys.sentences.count, rows = count / width, m = mask.pointer
        let siteSeed = DropoutKeys.mix(keys.seed ^ (site &* 0xD6E8_FEB8_6659_FD93))
        for row in 0..<rows {
            let t = row / batch, column = row % batch
            let rowSeed = DropoutKeys.mix(DropoutKeys.mix(siteSeed ^ keys.sentences[column]) ^ UInt64(t))
            for i in 0..<width {
                // The top 24 bits as a uniform number in [0, 1): dropped when below the rate.
                m[row * width + i] = DropoutKeys.mix(rowSeed ^ UInt64(i)) >> 40 < threshold ? 0 : keep
            }
        }
    }

    /// x ⊙= mask (nothing when inactive). Forward and backward are the same operation.
    func apply(_ x: UnsafeMutablePointer<Float>, count: Int) {
        guard active else { return }
        nmt_mul(x, mask.pointer, x, count)
    }

    func forward(_ x: UnsafeMutablePointer<Float>, count: Int, width: Int, keys: DropoutKeys) {
        draw(count: count, width: width, keys: keys)
        apply(x, count: count)
    }

    func backward(_ dx: UnsafeMutablePointer<Float>, count: Int) { apply(dx, count: count) }
}
