// libFuzzer target: the bytes of a safetensors file (SafeTensors.decode).
// Built and run by scripts/fuzz.sh safetensors SECONDS; see docs/fuzzing.md.
import Foundation
import NMTTensor

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ bytes: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let data = count == 0 ? Data() : Data(bytes: bytes!, count: count)
    // A thrown error is the parser's answer to a bad file; anything else it returns must hold together.
    guard let decoded = try? SafeTensors.decode(data, path: "input") else { return 0 }
    for tensor in decoded.tensors.values {
        check(tensor.values.count == tensor.shape.reduce(1, *), "\(tensor.name): values do not match shape \(tensor.shape)")
    }
    // The same bytes in a Data that does not start at index 0 (a slice) must read the same.
    let slice = (Data([0]) + data).dropFirst()
    let fromSlice = try? SafeTensors.decode(slice, path: "slice")
    check(fromSlice.map { same($0.tensors, decoded.tensors) && $0.metadata == decoded.metadata } ?? false,
                 "a slice of the same bytes decodes differently")
    // What was read writes back and reads again unchanged (as Float32).
    let written: Data
    do { written = try SafeTensors.encode(Array(decoded.tensors.values), metadata: decoded.metadata) } catch {
        fatalError("cannot write back what was read: \(error)")
    }
    guard let again = try? SafeTensors.decode(written, path: "written") else { fatalError("cannot read back what was written") }
    check(same(again.tensors, decoded.tensors) && again.metadata == decoded.metadata, "the round trip changed the tensors")
    return 0
}

/// Equal names, shapes and value bits (NaN payloads included).
private func same(_ a: [String: SafeTensors.Tensor], _ b: [String: SafeTensors.Tensor]) -> Bool {
    a.count == b.count && a.allSatisfy { name, tensor in
        guard let other = b[name] else { return false }
        return tensor.shape == other.shape && tensor.values.map(\.bitPattern) == other.values.map(\.bitPattern)
    }
}
