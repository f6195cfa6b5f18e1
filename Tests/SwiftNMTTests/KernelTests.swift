import XCTest
import CKernels
@testable import NMTMetrics
@testable import NMTModel
@testable import NMTModelFiles
@testable import NMTSearch
@testable import NMTTensor
@testable import NMTText
@testable import NMTTraining

final class KernelTests: XCTestCase {
    func testVectorExpTanhSigmoidMatchLibm() {
        let xs: [Float] = stride(from: -30.0, through: 30.0, by: 0.0137).map { Float($0) } + [0, 1e-4, -1e-4, 0.06, -0.07]
        var e = [Float](repeating: 0, count: xs.count)
        var t = e, s = e
        nmt_exp(xs, &e, xs.count)
        nmt_tanh(xs, &t, xs.count)
        nmt_sigmoid(xs, &s, xs.count)
        for (i, x) in xs.enumerated() {
            XCTAssertEqual(e[i], expf(x), accuracy: expf(x) * 3e-7, "exp(\(x))")
            XCTAssertEqual(t[i], tanhf(x), accuracy: max(abs(tanhf(x)) * 3e-7, 1e-8), "tanh(\(x))")
            XCTAssertEqual(s[i], 1 / (1 + expf(-x)), accuracy: 3e-7, "sigmoid(\(x))")
        }
    }

    func testLogSoftmaxRowsSumToOne() {
        var rows: [Float] = (0..<3 * 1000).map { Float(($0 * 7919) % 1000) / 50 - 10 }
        let original = rows
        nmt_log_softmax_rows(&rows, 3, 1000)
        for r in 0..<3 {
            let row = original[r * 1000..<(r + 1) * 1000]
            let m = row.max()!
            let lse = m + logf(row.reduce(Float(0)) { $0 + expf($1 - m) })
            for c in 0..<1000 { XCTAssertEqual(rows[r * 1000 + c], original[r * 1000 + c] - lse, accuracy: 2e-5) }
        }
    }
}
