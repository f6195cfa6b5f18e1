// libFuzzer target: the bytes of standard input as mt-translate reads them (LineSplitter and
// LineStream.clean), cut into chunks of fuzzer-chosen sizes as `read` could return them.
// Built and run by scripts/fuzz.sh line-stream SECONDS; see docs/fuzzing.md.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ bytes: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    guard count > 0 else { return 0 }
    let input = Array(UnsafeBufferPointer(start: bytes!, count: count))
    // The first byte chooses the chunk size, so that lines are split across reads at every place.
    let chunkSize = Int(input[0]) % 17 + 1
    let text = input[1...]

    var splitter = LineSplitter()
    var lines: [String] = []
    var start = text.startIndex
    while start < text.endIndex {
        let end = min(start + chunkSize, text.endIndex)
        lines += splitter.lines(in: text[start..<end])
        start = end
    }
    if let last = splitter.finish() { lines.append(last) }

    // The same text split in one piece: chunk boundaries must not change the lines.
    var expected = text.split(separator: 10, omittingEmptySubsequences: false).map { LineStream.clean($0) }
    if text.last == 10 || text.isEmpty { expected.removeLast() }
    check(lines == expected, "chunks of \(chunkSize) bytes give other lines than the whole input")
    // A repaired line can never break the output's line structure.
    for line in lines {
        check(!line.utf8.contains { $0 == 10 || $0 == 13 || $0 == 0 || $0 == 9 }, "a line keeps a control character")
    }
    return 0
}
