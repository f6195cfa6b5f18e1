import Foundation
import XCTest
@testable import NMTModel
@testable import NMTModelFiles
@testable import NMTTensor

/// Replacing a file never disturbs a reader: one that opened the old file keeps reading all of it,
/// one that opens afterwards reads all of the new. Only a new file renamed over the old one gives
/// this; writing in place (truncate, then write) hands the open reader a cut or mixed file.
final class AtomicWriteTests: XCTestCase {
    func temporaryDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "swiftnmt-atomic-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    /// Bytes that differ everywhere from another seed's, large enough to be read in several chunks.
    static func contents(seed: UInt64, count: Int) -> Data {
        var rng = RandomSource(seed: seed)
        return Data((0..<count).map { _ in UInt8(truncatingIfNeeded: rng.next()) })
    }

    func read(_ path: String) throws -> Data { try Data(contentsOf: URL(fileURLWithPath: path)) }

    func testAReaderOfTheOldFileKeepsReadingAllOfIt() throws {
        let directory = try temporaryDirectory(), path = directory + "/weights.bin"
        let old = Self.contents(seed: 1, count: 300_000), new = Self.contents(seed: 2, count: 200_000)
        try AtomicFile.write(old, to: path)
        let reader = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
        defer { try? reader.close() }
        let head = try XCTUnwrap(try reader.read(upToCount: 1000))  // a reader part-way through

        try AtomicFile.write(new, to: path)

        XCTAssertEqual(head + (try reader.readToEnd() ?? Data()), old, "the open reader reads the whole old file")
        XCTAssertEqual(try read(path), new, "a new reader reads the whole new file")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory), ["weights.bin"], "no temporary file is left")
    }

    static func model(seed: UInt64) -> Seq2Seq {
        try! Seq2Seq(config: ModelConfig(sourceVocabSize: 30, targetVocabSize: 30, embedSize: 16, encoderHiddenSize: 16,
                                         decoderHiddenSize: 16, attentionSize: 16), seed: seed)
    }

    /// `saveModel` over a model directory a translator is reading: the translator's open files stay whole.
    func testSavingAModelLeavesOpenReadersTheOldFiles() throws {
        let directory = try temporaryDirectory(), files = ModelDirectory(directory)
        try files.saveModel(Self.model(seed: 1))
        let names = ["model.safetensors", "model.json"]
        let old = try names.map { try read(directory + "/" + $0) }
        let readers = try names.map { try FileHandle(forReadingFrom: URL(fileURLWithPath: directory + "/" + $0)) }
        defer { for reader in readers { try? reader.close() } }

        let newer = Self.model(seed: 2)
        try files.saveModel(newer)

        for (name, (reader, oldBytes)) in zip(names, zip(readers, old)) {
            XCTAssertEqual(try reader.readToEnd(), oldBytes, "\(name): the open reader reads the whole old file")
        }
        XCTAssertEqual(try files.loadModel().parameters.storage.array, newer.parameters.storage.array, "a new reader loads the new model")
    }

    /// Checkpoints: a reader holding `last`'s weights open reads them whole through the next checkpoints,
    /// including the one a resumed run writes for the same update again.
    func testCheckpointsLeaveOpenReadersTheOldFiles() throws {
        let directory = try temporaryDirectory(), files = ModelDirectory(directory)
        try files.saveCheckpoint(update: 1, model: Self.model(seed: 1), files: [("trainer.json", Data("{\"update\":1}".utf8))])
        let weights = directory + "/last/model.safetensors"
        let old = try read(weights)
        let reader = try FileHandle(forReadingFrom: URL(fileURLWithPath: weights))
        defer { try? reader.close() }

        try files.saveCheckpoint(update: 2, model: Self.model(seed: 2), files: [("trainer.json", Data("{\"update\":2}".utf8))])
        let secondOld = try read(weights)
        let secondReader = try FileHandle(forReadingFrom: URL(fileURLWithPath: weights))
        defer { try? secondReader.close() }
        // The same update again (a run resumed and stopped at once), then the next.
        try files.saveCheckpoint(update: 2, model: Self.model(seed: 3), files: [("trainer.json", Data("{\"update\":2}".utf8))])
        let newest = Self.model(seed: 4)
        try files.saveCheckpoint(update: 3, model: newest, files: [("trainer.json", Data("{\"update\":3}".utf8))])

        XCTAssertEqual(try reader.readToEnd(), old, "a reader of checkpoint 1 reads it whole")
        XCTAssertEqual(try secondReader.readToEnd(), secondOld, "a reader of checkpoint 2 reads it whole")
        let loaded = Self.model(seed: 9)
        try files.loadCheckpointWeights(into: loaded)
        XCTAssertEqual(loaded.parameters.storage.array, newest.parameters.storage.array, "`last` leads to the newest checkpoint")
        XCTAssertEqual(try files.checkpointFile("trainer.json"), Data("{\"update\":3}".utf8))
    }
}
