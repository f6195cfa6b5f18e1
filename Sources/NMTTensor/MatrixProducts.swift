import CLowPrecision

/// The number format of the decoder's matrix products. f32 goes through OpenBLAS and is the reference;
/// bf16 and int8 go through oneDNN, with weights converted and packed once (`PackedWeights`).
public enum Precision: String, CaseIterable, Sendable, CustomStringConvertible {
    /// OpenBLAS sgemm.
    case f32
    /// bf16 inputs and weights, f32 sums (needs AVX-512 with bf16: Zen 4, Cooper Lake, Sapphire Rapids).
    case bf16
    /// 8-bit inputs (one scale per row, taken at each product) and weights (one scale per output), 32-bit
    /// sums; the products that decide the ranking of the next piece directly stay in bf16 (`MatrixProduct.sensitive`).
    case int8

    public var description: String { rawValue }
}

/// What the running CPU offers oneDNN's kernels (DNNL_MAX_CPU_ISA lowers it, to stand in for an older CPU).
public enum CPUFeatures {
    /// oneDNN's name for the instruction set it uses here, e.g. "avx512_core_bf16" or "avx2".
    public static var isaName: String { String(cString: nmt_lowp_cpu_isa_name()) }
    public static var hasBF16: Bool { nmt_lowp_cpu_features() & Int32(NMT_LOWP_HAS_BF16) != 0 }
    /// u8·s8 dot products into 32-bit sums (AVX-512 VNNI or AVX-VNNI).
    public static var hasVNNI: Bool { nmt_lowp_cpu_features() & Int32(NMT_LOWP_HAS_VNNI) != 0 }
    public static var hasAVX512: Bool { nmt_lowp_cpu_features() & Int32(NMT_LOWP_HAS_AVX512) != 0 }
    /// The class the benchmarks' targets are stated for: "avx512_bf16" or "avx2".
    public static var benchmarkClass: String { hasBF16 && hasVNNI ? "avx512_bf16" : "avx2" }

    /// The precision that runs for `requested` on this CPU, and a line for stderr when it is not what
    /// was asked for or runs with less than it could: bf16 without bf16 instructions runs as f32 (it
    /// would otherwise run on oneDNN's reference code, far slower than sgemm); int8 without VNNI keeps
    /// weights to 7 bits, because the u8·s8 instructions then add pairs of products in saturating
    /// 16-bit arithmetic.
    public static func resolve(_ requested: Precision) -> (precision: Precision, notice: String?) {
        switch requested {
        case .f32:
            return (.f32, nil)
        case .bf16:
            if hasBF16 { return (.bf16, nil) }
            return (.f32, "this CPU (\(isaName)) has no bf16 instructions: using f32 instead of bf16")
        case .int8:
            if hasVNNI { return (.int8, nil) }
            return (.int8, "this CPU (\(isaName)) has no VNNI instructions: int8 weights keep 7 bits, so that "
                    + "pairs of products cannot overflow 16 bits")
        }
    }
}

/// One weight matrix [outputs, inputs] (PyTorch's [out, in]) converted to bf16 or int8 and packed for
/// this CPU's kernel.
package final class PackedMatrix: @unchecked Sendable {
    package let outputs: Int, inputs: Int
    private let handle: OpaquePointer

    package struct Unsupported: Error, CustomStringConvertible {
        package let description: String
    }

    /// `weight` [outputs, inputs] row-major.
    package init(_ precision: Precision, weight: UnsafePointer<Float>, outputs: Int, inputs: Int) throws {
        precondition(precision != .f32, "f32 products use OpenBLAS on the weights as they are")
        var message = [CChar](repeating: 0, count: 256)
        guard let handle = nmt_packed_create(precision == .bf16 ? NMT_LOWP_BF16 : NMT_LOWP_INT8, weight, Int32(outputs), Int32(inputs),
                                             &message, message.count) else {
            throw Unsupported(description: String(cString: message))
        }
        self.handle = handle
        self.outputs = outputs
        self.inputs = inputs
    }

    deinit { nmt_packed_destroy(handle) }

    /// oneDNN's implementation, e.g. "gemm:jit".
    package var implementation: String { String(cString: nmt_packed_implementation(handle)) }

    /// y[rows × outputs] = x[rows × inputs] · Wᵀ + bias.
    @inline(__always)
    package func linear(_ x: UnsafePointer<Float>, rows: Int, ldx: Int, bias: UnsafePointer<Float>?,
                        into y: UnsafeMutablePointer<Float>, ldy: Int) {
        let status = nmt_packed_linear(handle, x, Int32(rows), Int32(ldx), bias, y, Int32(ldy))
        precondition(status == 0, "oneDNN matmul failed (status \(status))")
    }

    /// The weight as the products see it, from the f32 `weight` it was packed from.
    package func dequantized(from weight: UnsafePointer<Float>) -> [Float] {
        var out = [Float](repeating: 0, count: outputs * inputs)
        nmt_packed_dequantized_weight(handle, weight, &out)
        return out
    }
}

/// A weight matrix that the forward pass multiplies by: where it starts and its shape. One matrix may
/// span several parameters that follow each other (the query and GRU2's recurrent weights).
package struct MatrixProduct: Sendable {
    package let weight: ParameterView
    package let outputs: Int, inputs: Int
    /// Kept out of int8 (bf16 where the CPU has it, else f32): with all products in int8, 6.4 % of
    /// Multi30k's test sentences got another best translation than in f32; with the output layer, the
    /// deep output and the attention query in bf16, 3.3 % (bf16 everywhere: 0.9 %).
    package let sensitive: Bool

    package init(_ weight: ParameterView, outputs: Int? = nil, inputs: Int? = nil, sensitive: Bool = false) {
        self.weight = weight
        self.outputs = outputs ?? weight.shape[0]
        self.inputs = inputs ?? weight.shape[1]
        self.sensitive = sensitive
    }
}

/// The weights of a parameter buffer converted for one precision, found by the weight's view. Built
/// once from the current weights (when a model is loaded for decoding); training never uses them.
package final class PackedWeights: @unchecked Sendable {
    package let precision: Precision
    /// What the sensitive products use: bf16 under int8 when the CPU has it, f32 (nil: OpenBLAS) when not.
    package let sensitivePrecision: Precision?
    private let matrices: [Int: PackedMatrix]

    package init(_ parameters: ParameterBuffer, precision: Precision, products: [MatrixProduct]) throws {
        self.precision = precision
        sensitivePrecision = precision == .int8 ? (CPUFeatures.hasBF16 ? .bf16 : nil) : precision
        var matrices: [Int: PackedMatrix] = [:]
        for product in products where matrices[product.weight.offset] == nil {
            guard let productPrecision = product.sensitive ? sensitivePrecision : precision else { continue }
            matrices[product.weight.offset] = try PackedMatrix(productPrecision, weight: parameters[product.weight],
                                                               outputs: product.outputs, inputs: product.inputs)
        }
        self.matrices = matrices
    }

    @inline(__always)
    package subscript(weight: ParameterView) -> PackedMatrix? { matrices[weight.offset] }
}

extension ParameterBuffer {
    /// y[rows × outputs] = x[rows × inputs] · Wᵀ + bias with W = self[weight] [outputs, inputs]: through
    /// the packed weights when this buffer has them (decoding in bf16 or int8), else OpenBLAS.
    @inline(__always)
    package func linear(_ x: UnsafePointer<Float>, rows: Int, inputs: Int, ldx: Int? = nil, weight: ParameterView,
                        bias: UnsafePointer<Float>?, outputs: Int, into y: UnsafeMutablePointer<Float>, ldy: Int? = nil) {
        if let matrix = packed?[weight] {
            precondition(matrix.outputs == outputs && matrix.inputs == inputs, "\(weight.name) was packed as another shape")
            matrix.linear(x, rows: rows, ldx: ldx ?? inputs, bias: bias, into: y, ldy: ldy ?? outputs)
            return
        }
        BLAS.linear(x, rows: rows, inputs: inputs, ldx: ldx, weight: self[weight], bias: bias, outputs: outputs, into: y, ldy: ldy)
    }
}

/// Mixed-precision training (`mt-train --precision bf16`): the weights, gradients, optimizer and loss stay
/// f32; the matrix products of the forward and backward passes take bf16 operands and sum in f32. The
/// weights are converted to bf16 once per batch (they change only between updates), so that the products
/// read them without converting again; activations and gradients are converted at each product.
package final class MixedPrecision {
    private let weights: ParameterBuffer
    private var copy: [UInt16]

    package init(weights: ParameterBuffer) {
        self.weights = weights
        copy = [UInt16](repeating: 0, count: weights.count)
    }

    /// Runs a forward and backward pass with bf16 products over the current weights.
    package func run<T>(_ pass: () throws -> T) rethrows -> T {
        copy.withUnsafeMutableBufferPointer { bf16 in
            nmt_bf16_convert(weights.storage.pointer, bf16.baseAddress!, weights.count)
            nmt_bf16_set_mirror(weights.storage.pointer, bf16.baseAddress!, weights.count)
        }
        BLAS.trainingInBF16 = true
        defer {
            BLAS.trainingInBF16 = false
            nmt_bf16_set_mirror(nil, nil, 0)
        }
        return try pass()
    }
}
