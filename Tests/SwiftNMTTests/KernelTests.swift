import XCTest
import CKernels
@testable import NMTTensor

final class KernelTests: XCTestCase {
    /// `BLAS.gemm` against a double-precision product for 1 to 6 rows, both layouts of b, strides wider
    /// than the matrices, alpha and beta: products of at most `maxRowsForGEMV` rows go row by row through
    /// sgemv (with b transposed or not), larger ones through sgemm.
    func testSmallProductsMatchDoublePrecision() {
        var rng = RandomSource(seed: 23)
        let k = 37, n = 29, lda = 41, ldb = 45, ldc = 33
        func random(_ count: Int) -> [Float] { (0..<count).map { _ in Float(rng.next() % 2001) / 1000 - 1 } }
        for m in 1...6 {
            XCTAssertEqual(m <= BLAS.maxRowsForGEMV, m <= 4)
            for transB in [true, false] {
                let a = random(m * lda), b = random((transB ? n : k) * ldb), c0 = random(m * ldc)
                let alpha: Float = 0.75, beta: Float = m % 2 == 0 ? 0.5 : 0
                var c = c0
                BLAS.gemm(transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: &c, ldc: ldc)
                for i in 0..<m {
                    for j in 0..<n {
                        var sum = 0.0
                        for l in 0..<k { sum += Double(a[i * lda + l]) * Double(transB ? b[j * ldb + l] : b[l * ldb + j]) }
                        let expected = Double(alpha) * sum + Double(beta) * Double(c0[i * ldc + j])
                        XCTAssertEqual(Double(c[i * ldc + j]), expected, accuracy: 1e-5 * max(1, abs(expected)), "m \(m) transB \(transB) (\(i), \(j))")
                    }
                    // Columns past n are the caller's and stay as they were.
                    for j in n..<ldc { XCTAssertEqual(c[i * ldc + j], c0[i * ldc + j]) }
                }
            }
        }
    }

    /// tanh_approx against libm over the range the gates and the deep output see, and beyond.
    func testVectorTanhMatchesLibm() {
        let xs: [Float] = stride(from: -30.0, through: 30.0, by: 0.0137).map { Float($0) } + [0, 1e-4, -1e-4, 0.06, -0.07]
        var t = [Float](repeating: 0, count: xs.count)
        nmt_tanh(xs, &t, xs.count)
        for (i, x) in xs.enumerated() {
            XCTAssertEqual(t[i], tanhf(x), accuracy: max(abs(tanhf(x)) * 3e-7, 1e-8), "tanh(\(x))")
        }
    }

    /// log Σ exp (the search's normalizer, through exp_approx) against a double-precision sum, on rows
    /// long enough to cover the vector loop and its remainder, with large and very negative entries.
    func testLogSumExpMatchesDoublePrecision() {
        for n in [1, 7, 33, 1000, 8003] {
            let row: [Float] = (0..<n).map { Float(($0 * 7919) % 1000) / 50 - 10 + ($0 == n / 2 ? 60 : 0) }
            let m = Double(row.max()!)
            let expected = m + log(row.reduce(0.0) { $0 + exp(Double($1) - m) })
            XCTAssertEqual(Double(nmt_log_sum_exp(row, n)), expected, accuracy: 1e-5 * max(1, abs(expected)), "n = \(n)")
        }
    }

    /// Top-k returns the k largest values, largest first, with their indices, including ties and a
    /// maximum in the last, partial block of 32.
    func testTopKFindsTheLargestInOrder() {
        var rng = RandomSource(seed: 17)
        for n in [5, 32, 33, 100, 8000] {
            var row = (0..<n).map { _ in rng.uniform(5) }
            row[n - 1] = 9
            if n > 3 { row[1] = row[2] }
            for k in [1, 3, min(6, n)] {
                var index = [Int32](repeating: 0, count: k), value = [Float](repeating: 0, count: k)
                nmt_top_k(row, n, Int32(k), &index, &value)
                let expected = Array(row.sorted(by: >).prefix(k))
                XCTAssertEqual(value, expected, "n = \(n), k = \(k)")
                for j in 0..<k { XCTAssertEqual(row[Int(index[j])], value[j]) }
                XCTAssertEqual(Set(index).count, k, "n = \(n), k = \(k): an index twice")
            }
        }
    }
}
