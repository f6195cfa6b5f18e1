// libFuzzer target: the bytes of an mt-preprocess manifest.json (PreprocessManifest.load).
// Built and run by scripts/fuzz.sh manifest SECONDS; see docs/fuzzing.md.
import Foundation

/// A directory of this process that holds the input as its manifest.json.
private let directory: String = {
    let path = NSTemporaryDirectory() + "/swiftnmt-fuzz-manifest-\(getpid())"
    try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    atexit { try? FileManager.default.removeItem(atPath: directory) }
    return path
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ bytes: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let data = count == 0 ? Data() : Data(bytes: bytes!, count: count)
    try! data.write(to: URL(fileURLWithPath: directory + "/manifest.json"))
    // A thrown error is the parser's answer to a bad file; a manifest it accepts must be usable.
    guard let manifest = try? PreprocessManifest.load(directory: directory) else { return 0 }
    _ = manifest.split("train")
    check(manifest.request.differences(from: manifest.request).isEmpty, "a request differs from itself")
    // What was read writes back (as mt-preprocess writes it) and reads again unchanged.
    let written: Data
    do { written = try manifest.encoded() } catch { fatalError("cannot write back what was read: \(error)") }
    guard let again = try? JSONDecoder().decode(PreprocessManifest.self, from: written) else {
        fatalError("cannot read back what was written")
    }
    check(again == manifest, "the round trip changed the manifest")
    return 0
}
