import CBLAS
import CLowPrecision

/// Row-major matrix products through OpenBLAS. Every matrix product in SwiftNMT goes through here.
public enum BLAS {
    /// When set, every gemm adds its 2·m·n·k here: a test hook (the test checks the analytic FLOP count with it).
    nonisolated(unsafe) static var flopTally: Double?
    /// Set around a training pass in bf16 (`MixedPrecision`): products go to oneDNN in bf16 with f32 sums.
    nonisolated(unsafe) static var trainingInBF16 = false

    /// c[m×n] = alpha · op(a) · op(b) + beta · c, where op(a) is m×k and op(b) is k×n.
    @inline(__always)
    package static func gemm(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
                            alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                            b: UnsafePointer<Float>, ldb: Int,
                            beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        guard m > 0, n > 0 else { return }
        if flopTally != nil { flopTally! += 2 * Double(m) * Double(n) * Double(k) }
        if trainingInBF16 && alpha == 1 && k > 0 &&
            nmt_bf16_gemm(transA ? 1 : 0, transB ? 1 : 0, Int32(m), Int32(n), Int32(k), a, Int32(lda), b, Int32(ldb), beta, c,
                          Int32(ldc), openblas_get_num_threads()) == 0 {
            return
        }
        if k == 0 {
            if beta != 1 { for row in 0..<m { for col in 0..<n { c[row * ldc + col] *= beta } } }
            return
        }
        if m <= maxRowsForGEMV && !transA {
            // A row at a time: OpenBLAS's sgemm packs all of b on every call whatever m, which makes one
            // row 5× slower than sgemv ([1, 512] · [512, 8000]: 994 against 170 µs; 4 rows: 886 against
            // 689; 8 rows: 1,128 against 1,374). Single sentences (a server admitting requests as they
            // come, --batch-size 1) run their encoder steps on such products.
            for row in 0..<m {
                cblas_sgemv(CblasRowMajor, transB ? CblasNoTrans : CblasTrans, Int32(transB ? n : k), Int32(transB ? k : n),
                            alpha, b, Int32(ldb), a + row * lda, 1, beta, c + row * ldc, 1)
            }
            return
        }
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// y += alpha · x
    @inline(__always)
    package static func axpy(_ n: Int, alpha: Float = 1, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>) {
        cblas_saxpy(Int32(n), alpha, x, 1, y, 1)
    }

    /// Products of at most this many rows go row by row through sgemv (`gemm`).
    package static let maxRowsForGEMV = 4

    /// The number of threads OpenBLAS uses (initially from OPENBLAS_NUM_THREADS, else all cores).
    /// oneDNN's bf16 and int8 products always run on the calling thread alone (`PackedMatrix`).
    public static var threads: Int {
        get { Int(openblas_get_num_threads()) }
        set { openblas_set_num_threads(Int32(max(1, newValue))) }
    }

    // MARK: Layer-shaped helpers (weights stored [out, in] as in PyTorch)

    /// y[n×out] = x[n×in] · wᵀ + bias, bias broadcast over rows (nil: no bias).
    @inline(__always)
    package static func linear(_ x: UnsafePointer<Float>, rows: Int, inputs: Int, ldx: Int? = nil,
                              weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?, outputs: Int,
                              into y: UnsafeMutablePointer<Float>, ldy: Int? = nil, accumulate: Bool = false) {
        let ldy = ldy ?? outputs
        if let bias, !accumulate {
            for r in 0..<rows { (y + r * ldy).update(from: bias, count: outputs) }
        }
        gemm(transB: true, m: rows, n: outputs, k: inputs, a: x, lda: ldx ?? inputs, b: weight, ldb: inputs,
             beta: (bias != nil || accumulate) ? 1 : 0, c: y, ldc: ldy)
        if let bias, accumulate {
            for r in 0..<rows { axpy(outputs, x: bias, y: y + r * ldy) }
        }
    }

    /// Backward of `linear`: dW += dyᵀ·x, dBias += Σ_rows dy, and dx (+)= dy·W when dx is given.
    @inline(__always)
    package static func linearBackward(_ x: UnsafePointer<Float>, rows: Int, inputs: Int, ldx: Int? = nil,
                                      weight: UnsafePointer<Float>, outputs: Int,
                                      dy: UnsafePointer<Float>, lddy: Int? = nil,
                                      dWeight: UnsafeMutablePointer<Float>, dBias: UnsafeMutablePointer<Float>?,
                                      dx: UnsafeMutablePointer<Float>?, lddx: Int? = nil, accumulateDx: Bool) {
        let lddy = lddy ?? outputs
        gemm(transA: true, m: outputs, n: inputs, k: rows, a: dy, lda: lddy, b: x, ldb: ldx ?? inputs,
             beta: 1, c: dWeight, ldc: inputs)
        if let dBias { addRows(dy, rows: rows, columns: outputs, ld: lddy, into: dBias) }
        if let dx {
            gemm(m: rows, n: inputs, k: outputs, a: dy, lda: lddy, b: weight, ldb: inputs,
                 beta: accumulateDx ? 1 : 0, c: dx, ldc: lddx ?? inputs)
        }
    }

    /// sum[c] += Σ_r x[r, c]
    @inline(__always)
    package static func addRows(_ x: UnsafePointer<Float>, rows: Int, columns: Int, ld: Int, into sum: UnsafeMutablePointer<Float>) {
        for r in 0..<rows { axpy(columns, x: x + r * ld, y: sum) }
    }
}
