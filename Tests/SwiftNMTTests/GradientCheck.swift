import XCTest
@testable import NMTTensor

/// Central finite differences against an analytic gradient, entry by entry.
/// An entry passes when |analytic − numeric| ≤ absoluteTolerance + relativeTolerance · max(|analytic|, |numeric|).
/// Measured on the model tests: with ε = 1e-2 the numeric and analytic derivatives of the Float32
/// loss differ by at most about 5e-6 absolute (rounding plus ε² truncation), for gradients of
/// 1e-4 to 2e-1; the tolerances sit above that noise and below a 5% error in a gradient of 1e-3.
struct GradientCheck {
    var epsilon: Float = 1e-2
    var absoluteTolerance: Double = 1e-5
    var relativeTolerance: Double = 1e-2

    struct Failure: CustomStringConvertible {
        let tensor: String, index: Int, analytic: Double, numeric: Double
        var description: String { "\(tensor)[\(index)]: analytic \(analytic) vs numeric \(numeric)" }
    }

    /// Indices to check in a tensor: the entries with the largest analytic gradients (so that unused
    /// embedding rows, whose zero gradient is trivially right, do not make up the sample) plus random ones.
    static func sample(_ gradient: UnsafePointer<Float>, count: Int, largest: Int, random: Int, rng: inout RandomSource) -> [Int] {
        let order = (0..<count).sorted { abs(gradient[$0]) > abs(gradient[$1]) }
        var picked = Array(order.prefix(largest))
        for _ in 0..<random { picked.append(Int(rng.next() % UInt64(count))) }
        return Array(Set(picked)).sorted()
    }

    /// Perturbs `values[i]` for each sampled i, evaluating `loss` at ±ε, and compares with `analytic[i]`.
    func check(_ tensor: String, values: UnsafeMutablePointer<Float>, analytic: UnsafePointer<Float>, count: Int,
               largest: Int = 4, random: Int = 3, rng: inout RandomSource, loss: () -> Double) -> [Failure] {
        var failures: [Failure] = []
        for i in GradientCheck.sample(analytic, count: count, largest: largest, random: random, rng: &rng) {
            let saved = values[i]
            values[i] = saved + epsilon
            let plus = loss()
            values[i] = saved - epsilon
            let minus = loss()
            values[i] = saved
            let numeric = (plus - minus) / (2 * Double(epsilon))
            let a = Double(analytic[i])
            if abs(a - numeric) > absoluteTolerance + relativeTolerance * max(abs(a), abs(numeric)) {
                failures.append(Failure(tensor: tensor, index: i, analytic: a, numeric: numeric))
            }
        }
        return failures
    }
}

func randomFill(_ p: UnsafeMutablePointer<Float>, _ n: Int, scale: Float, rng: inout RandomSource) {
    for i in 0..<n { p[i] = rng.uniform(scale) }
}
