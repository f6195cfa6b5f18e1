import XCTest
import CKernels
@testable import NMTTensor

final class KernelTests: XCTestCase {
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
