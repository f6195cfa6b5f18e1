// libFuzzer target: the bytes of a token dataset file (TokenDataset(path:), which maps the file).
// Built and run by scripts/fuzz.sh token-dataset SECONDS; see docs/fuzzing.md.
import Foundation
import Glibc

/// The file the input is written to: the parser maps a file by path. In memory (/dev/shm) where there is one.
private let inputPath: String = {
    let directory = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : NSTemporaryDirectory()
    let path = "\(directory)/swiftnmt-fuzz-token-dataset-\(getpid()).bin"
    atexit { unlink(inputPath) }
    return path
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ bytes: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let written = FileManager.default.createFile(atPath: inputPath, contents: count == 0 ? Data() : Data(bytes: bytes!, count: count))
    check(written, "cannot write \(inputPath)")
    // A thrown error is the parser's answer to a bad file; a dataset it accepts must be whole.
    guard let dataset = try? TokenDataset(path: inputPath) else { return 0 }
    check(dataset.count >= 0 && dataset.tokenCount >= 0 && dataset.vocabSize >= 0, "negative counts")
    guard dataset.count > 0 else {
        check(dataset.tokenCount == 0, "no sentences but \(dataset.tokenCount) tokens")
        return 0
    }
    // Every sentence lies inside the ids (the accessors do no checks of their own), in order, and
    // together they are all the tokens.
    let firstId = dataset.tokens(0).baseAddress!
    var end = 0
    for i in 0..<dataset.count {
        let sentence = dataset.tokens(i)
        let start = sentence.baseAddress! - firstId
        check(start == end && sentence.count == dataset.length(i), "sentence \(i) is not where the previous ended")
        end = start + sentence.count
        check(end <= dataset.tokenCount, "sentence \(i) ends after the last token")
        if dataset.vocabSize > 0 {
            check(sentence.allSatisfy { $0 >= 0 && Int($0) < dataset.vocabSize }, "sentence \(i) has an id outside the vocabulary")
        }
    }
    check(end == dataset.tokenCount, "the sentences hold \(end) of \(dataset.tokenCount) tokens")
    check(dataset.lengths.reduce(0, +) == dataset.tokenCount && dataset.maxLength <= dataset.tokenCount, "lengths do not add up")
    return 0
}
