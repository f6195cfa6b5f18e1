import Foundation
import XCTest
@testable import NMTTensor
@testable import NMTText
@testable import NMTTraining

/// The pieces that keep memory bounded on large corpora: the chunked line reader, the reservoir sample,
/// the streaming dataset writer, compact lengths and the in-place batcher.
final class StreamingTests: XCTestCase {
    private var dirs: [String] = []

    override func tearDown() {
        for d in dirs { try? FileManager.default.removeItem(atPath: d) }
        dirs = []
    }

    private func tempDir(_ name: String) throws -> String {
        let d = try TestCorpus.makeTempDir(name)
        dirs.append(d)
        return d
    }

    private func readAll(_ path: String, maxLines: Int, blockSize: Int) throws -> (lines: [String], reader: LineReader) {
        let reader = try LineReader(path: path, blockSize: blockSize)
        var chunk = LineChunk()
        var lines: [String] = []
        while try reader.read(maxLines: maxLines, into: &chunk) {
            XCTAssertLessThanOrEqual(chunk.count, maxLines)
            XCTAssertEqual(chunk.firstLine, lines.count)
            for i in 0..<chunk.count { lines.append(chunk.withLine(i) { String(decoding: $0, as: UTF8.self) }) }
        }
        return (lines, reader)
    }

    // MARK: LineReader

    func testLineReaderGivesTheSameLinesInAnyChunkAndBlockSize() throws {
        let dir = try tempDir("reader")
        let long = String(repeating: "lange Zeile ", count: 50)
        // BOM, CRLF, empty lines, a line longer than the read blocks, a non-ASCII line, no final newline.
        let text = "\u{FEFF}first\r\nsecond\n\n\(long)\nGrüße, ça va?\r\n\nlast"
        let expected = ["first", "second", "", long, "Grüße, ça va?", "", "last"]
        let path = dir + "/text"
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        for (maxLines, blockSize) in [(1000, 1 << 20), (1, 16), (2, 3), (3, 64)] {
            let (lines, reader) = try readAll(path, maxLines: maxLines, blockSize: blockSize)
            XCTAssertEqual(lines, expected, "maxLines \(maxLines), blockSize \(blockSize)")
            XCTAssertEqual(reader.linesRead, expected.count)
            // The checksum covers every byte of the file, as the manifest's did when files were read whole.
            let bytes = [UInt8](text.utf8)
            let whole = bytes.withUnsafeBufferPointer { LineReader.fnv1a64($0) }
            XCTAssertEqual(reader.checksum, String(format: "%016llx", whole))
        }
        // Edge cases of line counting: an empty file has no lines; "a\n" one; "\n" one empty line.
        for (contents, count) in [("", 0), ("a\n", 1), ("\n", 1), ("a\n\nb", 3)] {
            try Data(contents.utf8).write(to: URL(fileURLWithPath: path))
            XCTAssertEqual(try readAll(path, maxLines: 2, blockSize: 16).lines.count, count, "'\(contents)'")
        }
    }

    func testLineReaderNamesTheLineOfInvalidUTF8AcrossChunks() throws {
        let dir = try tempDir("reader-utf8")
        let path = dir + "/bad"
        var bytes = [UInt8]((0..<40).map { "line \($0)\n" }.joined().utf8)
        bytes += [0x61, 0xC3, 0x28, 0x0A]  // line 41: "a", then a cut-off two-byte sequence
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try readAll(path, maxLines: 7, blockSize: 16)) { error in
            XCTAssertTrue("\(error)".contains("line 41, byte 2"), "\(error)")
            XCTAssertTrue("\(error)".contains(path), "\(error)")
        }
    }

    func testLineReaderReadsGzipAndReportsAFailingGzip() throws {
        let dir = try tempDir("reader-gz")
        let lines = (0..<500).map { "Zeile \($0) mit Umlauten: äöü" }
        try TestCorpus.writeLines(lines, to: dir + "/text")
        try TestCorpus.gzip(dir + "/text")
        let (read, reader) = try readAll(dir + "/text.gz", maxLines: 64, blockSize: 100)
        XCTAssertEqual(read, lines)
        XCTAssertTrue(reader.compressed)
        try Data("not gzip at all".utf8).write(to: URL(fileURLWithPath: dir + "/broken.gz"))
        XCTAssertThrowsError(try readAll(dir + "/broken.gz", maxLines: 64, blockSize: 100)) { error in
            XCTAssertTrue("\(error)".contains("cannot decompress"), "\(error)")
        }
    }

    // MARK: SentenceSample

    func testSentenceSampleIsBoundedUniformAndReproducible() throws {
        func sample(seed: UInt64, capacity: Int, of n: Int) -> [String] {
            var s = SentenceSample(capacity: capacity, seed: seed)
            for i in 0..<n {
                let text = Array("sentence \(i)".utf8)
                text.withUnsafeBytes { s.offer($0) }
            }
            XCTAssertEqual(s.seen, n)
            return s.withSentences { $0.map { String(decoding: $0, as: UTF8.self) } }
        }
        // Fewer sentences than the capacity: all of them, in order.
        XCTAssertEqual(sample(seed: 1, capacity: 10, of: 4), (0..<4).map { "sentence \($0)" })
        // More: exactly the capacity, distinct, each a sentence of the stream; the same seed, the same sample.
        let a = sample(seed: 7, capacity: 50, of: 5000)
        XCTAssertEqual(a.count, 50)
        XCTAssertEqual(Set(a).count, 50)
        XCTAssertEqual(a, sample(seed: 7, capacity: 50, of: 5000))
        XCTAssertNotEqual(a, sample(seed: 8, capacity: 50, of: 5000))
        // Uniform: over 400 samples of 10 from 100, every sentence is drawn about 40 times; the first and
        // the last halves of the stream equally often (a sample that kept the first sentences would fail).
        var counts = [Int](repeating: 0, count: 100)
        for seed in 0..<400 {
            for sentence in sample(seed: UInt64(seed), capacity: 10, of: 100) {
                counts[Int(sentence.split(separator: " ")[1])!] += 1
            }
        }
        XCTAssertEqual(counts.reduce(0, +), 4000)
        XCTAssertTrue(counts.allSatisfy { (15...70).contains($0) }, "\(counts)")
        let firstHalf = counts[..<50].reduce(0, +)
        XCTAssertTrue((1850...2150).contains(firstHalf), "first half drawn \(firstHalf) times of 4000")
    }

    // MARK: TokenDatasetWriter

    func testStreamingWriterGivesTheSameFileWithAnyBufferAndLeavesNothingWhenDropped() throws {
        let dir = try tempDir("writer")
        var rng = RandomSource(seed: 3)
        let sentences: [[Int32]] = (0..<200).map { _ in (0..<Int(rng.next() % 30)).map { _ in Int32(rng.next() % 500) } }
        var files: [Data] = []
        for buffer in [1 << 16, 1, 7] {
            let path = dir + "/b\(buffer).bin"
            let w = try TokenDatasetWriter(path: path, vocabSize: 500, bufferLength: buffer)
            for s in sentences { try w.append(s) }
            XCTAssertFalse(FileManager.default.fileExists(atPath: path), "written before finish()")
            try w.finish()
            files.append(try Data(contentsOf: URL(fileURLWithPath: path)))
            let ds = try TokenDataset(path: path)
            XCTAssertEqual((0..<ds.count).map { Array(ds.tokens($0)) }, sentences)
        }
        XCTAssertEqual(files[1], files[0])
        XCTAssertEqual(files[2], files[0])
        // A writer dropped before finish() (a failed run) leaves no file and no temporary file.
        let before = Set(try FileManager.default.contentsOfDirectory(atPath: dir))
        do {
            let w = try TokenDatasetWriter(path: dir + "/dropped.bin", vocabSize: 500, bufferLength: 4)
            for s in sentences { try w.append(s) }
        }
        XCTAssertEqual(Set(try FileManager.default.contentsOfDirectory(atPath: dir)), before)
    }

    // MARK: Training side

    func testSentenceLengthsAreCompactAndRefuseOverlongSentences() throws {
        let dir = try tempDir("lengths")
        let sentences: [[Int32]] = [[5, 6, 7], [], [4], [Int32](repeating: 9, count: 65_535)]
        try TokenDatasetWriter.write(path: dir + "/ok.bin", sentences: sentences)
        let ds = try TokenDataset(path: dir + "/ok.bin")
        XCTAssertEqual(try ds.sentenceLengths(), [3, 0, 1, 65_535])
        // Read with pread, as training does: the same ids as through the mapping.
        for i in 0..<ds.count { XCTAssertEqual(try ds.readTokens(i), Array(ds.tokens(i))) }
        // Into one array kept from sentence to sentence, longest first: each read replaces all it held.
        var ids: [Int32] = []
        for i in [3, 0, 1, 2, 1] {
            try ds.readTokens(i, into: &ids)
            XCTAssertEqual(ids, Array(ds.tokens(i)))
        }
        try TokenDatasetWriter.write(path: dir + "/long.bin", sentences: [[4], [Int32](repeating: 9, count: 65_536)])
        XCTAssertThrowsError(try TokenDataset(path: dir + "/long.bin").sentenceLengths()) { error in
            XCTAssertTrue("\(error)".contains("sentence 1 has 65536 tokens"), "\(error)")
        }
    }

    /// The batcher as it was when it held `[Int]` lengths and `[[Int]]` batches: the compact one must
    /// give the same batches in the same order, so that runs resume and reproduce as before.
    private func referenceBatches(sourceLengths: [Int], targetLengths: [Int], size: BatchSize, seed: UInt64, epoch: Int) -> [[Int]] {
        var rng = RandomSource(seed: seed &+ UInt64(epoch) &* 0x9E37_79B9)
        var order = Array(sourceLengths.indices)
        order.shuffle(using: &rng)
        let typicalBatch: Int
        switch size {
        case .sentences(let n): typicalBatch = n
        case .tokens(let t): typicalBatch = max(1, t / max(1, targetLengths.reduce(0, +) / max(1, targetLengths.count) + 1))
        }
        let pool = max(1, typicalBatch * 50)
        var batches: [[Int]] = []
        for start in stride(from: 0, to: order.count, by: pool) {
            let chunk = order[start..<min(order.count, start + pool)].sorted {
                (targetLengths[$0], sourceLengths[$0]) < (targetLengths[$1], sourceLengths[$1])
            }
            var current: [Int] = []
            var longest = 0
            for i in chunk {
                let length = max(targetLengths[i] + 1, sourceLengths[i])
                let full: Bool
                switch size {
                case .sentences(let n): full = current.count == n
                case .tokens(let t): full = !current.isEmpty && max(longest, length) * (current.count + 1) > t
                }
                if full {
                    batches.append(current)
                    current = []
                    longest = 0
                }
                current.append(i)
                longest = max(longest, length)
            }
            if !current.isEmpty { batches.append(current) }
        }
        batches.shuffle(using: &rng)
        return batches
    }

    func testCompactBatcherGivesTheBatchesOfTheReference() {
        var rng = RandomSource(seed: 12)
        let n = 3000
        let source = (0..<n).map { _ in UInt16(1 + rng.next() % 60) }
        let target = source.map { UInt16(max(1, Int($0) + Int(rng.next() % 11) - 5)) }
        for size in [BatchSize.sentences(64), .sentences(1), .sentences(7), .tokens(800), .tokens(30)] {
            for epoch in [0, 3] {
                let compact = Batcher.epochBatches(sourceLengths: source, targetLengths: target, size: size, seed: 5, epoch: epoch)
                let reference = referenceBatches(sourceLengths: source.map(Int.init), targetLengths: target.map(Int.init),
                                                 size: size, seed: 5, epoch: epoch)
                XCTAssertEqual((0..<compact.count).map { compact[$0].map(Int.init) }, reference, "\(size), epoch \(epoch)")
                XCTAssertEqual(compact.order.count, n)
            }
        }
    }

    // MARK: Progress

    func testProgressMeterFigures() {
        XCTAssertEqual(ProgressMeter.grouped(4_350_000), "4,350,000")
        XCTAssertEqual(ProgressMeter.grouped(999), "999")
        XCTAssertEqual(ProgressMeter.grouped(1000), "1,000")
        var meter = ProgressMeter(interval: 0)
        Thread.sleep(forTimeInterval: 0.01)
        let report = try? XCTUnwrap(meter.report(done: 250, of: 1000, unit: "pairs"))
        XCTAssertTrue(report?.hasPrefix("250 of 1,000 pairs (25%), ") ?? false, report ?? "nil")
        XCTAssertTrue(report?.contains(" pairs/s, 0:") ?? false, report ?? "nil")
        XCTAssertNil(meter.report(done: 0, of: 1000, unit: "pairs"))  // nothing done yet: nothing to say
        var slow = ProgressMeter(interval: 3600)
        XCTAssertNil(slow.report(done: 10, unit: "lines"))
    }
}
