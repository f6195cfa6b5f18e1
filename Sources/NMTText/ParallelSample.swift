import Foundation

/// The first sentence pairs of a parallel corpus (plain or .gz files, one sentence per line), as ids of
/// the given SentencePiece models: what a lexical shortlist is estimated on. At most `maxPairs` pairs are
/// read, so memory stays bounded on any corpus; pairs where either side is empty are skipped.
package func encodedSentencePairs(sourceFile: String, targetFile: String, source: SentencePiece, target: SentencePiece,
                                  maxPairs: Int) throws -> [(source: [Int32], target: [Int32])] {
    let sourceReader = try LineReader(path: sourceFile), targetReader = try LineReader(path: targetFile)
    var sourceChunk = LineChunk(), targetChunk = LineChunk()
    var pairs: [(source: [Int32], target: [Int32])] = []
    while pairs.count < maxPairs {
        let more = min(10_000, maxPairs - pairs.count)
        let sourceHas = try sourceReader.read(maxLines: more, into: &sourceChunk)
        let targetHas = try targetReader.read(maxLines: more, into: &targetChunk)
        guard sourceHas == targetHas, sourceChunk.count == targetChunk.count else {
            throw PreprocessError("\(sourceFile) and \(targetFile) have different numbers of lines")
        }
        if !sourceHas { break }
        for i in 0..<sourceChunk.count {
            var sourceIds: [Int32] = [], targetIds: [Int32] = []
            try sourceChunk.withLine(i) { try source.encode(utf8: $0, into: &sourceIds) }
            try targetChunk.withLine(i) { try target.encode(utf8: $0, into: &targetIds) }
            if !sourceIds.isEmpty && !targetIds.isEmpty { pairs.append((sourceIds, targetIds)) }
        }
    }
    return pairs
}
