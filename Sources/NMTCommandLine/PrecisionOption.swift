import ArgumentParser
import NMTTensor

extension Precision: ExpressibleByArgument {}

/// `--precision f32|bf16|int8`: the number format of the decoder's matrix products, in every program
/// that decodes. What runs depends on the CPU (`CPUFeatures.resolve`); a fallback is said once on stderr.
public struct PrecisionOption: ParsableArguments {
    @Option(help: ArgumentHelp("""
        Matrix products in f32 (OpenBLAS, the reference), bf16 or int8 (oneDNN, weights converted once at load). \
        bf16 needs AVX-512 with bf16 and otherwise runs as f32; int8 runs everywhere, with 7-bit weights on CPUs \
        without VNNI. See docs/performance.md for the speed and BLEU of each.
        """, valueName: "precision"))
    public var precision: Precision = .f32

    public init() {}

    /// The precision that runs here; prints `PROGRAM: warning: …` once when it differs from the one asked for.
    public func resolved(for program: String) -> Precision {
        let (precision, notice) = CPUFeatures.resolve(precision)
        if let notice { Failure.printWarning(program, notice) }
        return precision
    }
}
