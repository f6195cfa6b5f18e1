import Foundation
import NMTTensor

/// A lexical shortlist (Marian's `--shortlist`): the target pieces a sentence's translation may use,
/// namely the most frequent target pieces, plus for each of its source pieces the target pieces most
/// likely to translate it (from IBM Model 1 on the training corpus), plus the special tokens. The output
/// layer, log-softmax and top-k then run over the union of the batch's candidates instead of the whole
/// vocabulary, and every row is masked to its own sentence's candidates, so that a translation does not
/// depend on what shares its batch.
///
/// File (`shortlist.txt` in a model directory), ids of the model's SentencePiece models:
///   # comment lines
///   frequent<TAB>t t t …                  target ids, most frequent first
///   <source id><TAB>t t t …               target ids, most likely translation first
package struct Shortlist: Sendable {
    package static let fileName = "shortlist.txt"
    /// How many sentence pairs mt-train estimates the shortlist on: all of Multi30k's 29,000 (1.5 s, 110 MB
    /// peak); 50,000 of its pairs take 150 MB. The table holds every (source, target) pair of pieces
    /// of a sentence pair, so memory grows with the square of the sentences' length.
    package static let trainingPairs = 50_000

    /// Target pieces by frequency, most frequent first.
    package let frequent: [Int32]
    /// translations[s]: target pieces by p(t | s), best first (empty for a source piece never seen).
    package let translations: [[Int32]]
    package let targetVocabSize: Int
    /// How many of `frequent` and of each `translations[s]` a sentence's candidates take.
    package var frequentCount: Int, translationCount: Int

    package init(frequent: [Int32], translations: [[Int32]], targetVocabSize: Int, frequentCount: Int = 100, translationCount: Int = 100) {
        self.frequent = frequent
        self.translations = translations
        self.targetVocabSize = targetVocabSize
        self.frequentCount = frequentCount
        self.translationCount = translationCount
    }

    /// A shortlist that allows every target piece (for tests: decoding with it must equal decoding without).
    package static func everything(targetVocabSize: Int) -> Shortlist {
        Shortlist(frequent: (0..<Int32(targetVocabSize)).map { $0 }, translations: [], targetVocabSize: targetVocabSize,
                  frequentCount: targetVocabSize, translationCount: 0)
    }

    /// The sorted candidate ids of a sentence with these source ids. `marks` is scratch of targetVocabSize
    /// entries, all false on entry and on return.
    package func candidates(for source: [Int32], marks: inout [Bool]) -> [Int32] {
        var list: [Int32] = []
        func add(_ id: Int32) {
            guard !marks[Int(id)] else { return }
            marks[Int(id)] = true
            list.append(id)
        }
        for id in 0..<Int32(SpecialTokens.count) where Int(id) < targetVocabSize { add(id) }
        for id in frequent.prefix(frequentCount) { add(id) }
        for s in source where Int(s) < translations.count {
            for id in translations[Int(s)].prefix(translationCount) { add(id) }
        }
        for id in list { marks[Int(id)] = false }
        return list.sorted()
    }

    // MARK: The file

    package func text() -> String {
        var out = "# SwiftNMT lexical shortlist: target piece ids by frequency, then for each source piece id its likely\n"
            + "# translations (IBM Model 1), best first.\n"
        out += "frequent\t" + frequent.map(String.init).joined(separator: " ") + "\n"
        for (s, list) in translations.enumerated() where !list.isEmpty {
            out += "\(s)\t" + list.map(String.init).joined(separator: " ") + "\n"
        }
        return out
    }

    package struct FormatError: Error, CustomStringConvertible {
        package let description: String
    }

    package init(text: String, path: String, sourceVocabSize: Int, targetVocabSize: Int) throws {
        var frequent: [Int32] = []
        var translations = [[Int32]](repeating: [], count: sourceVocabSize)
        func ids(_ field: Substring, line: Int) throws -> [Int32] {
            try field.split(separator: " ").map { token in
                guard let id = Int32(token), id >= 0, Int(id) < targetVocabSize else {
                    throw FormatError(description: "\(path), line \(line): '\(token)' is not a target piece id below \(targetVocabSize)")
                }
                return id
            }
        }
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            if line.isEmpty || line.hasPrefix("#") { continue }
            let fields = line.split(separator: "\t", maxSplits: 1, omittingEmptySubsequences: false)
            guard fields.count == 2 else { throw FormatError(description: "\(path), line \(number + 1): expected KEY<TAB>IDS") }
            if fields[0] == "frequent" {
                frequent = try ids(fields[1], line: number + 1)
            } else if let s = Int(fields[0]), s >= 0, s < sourceVocabSize {
                translations[s] = try ids(fields[1], line: number + 1)
            } else {
                throw FormatError(description: "\(path), line \(number + 1): '\(fields[0])' is not a source piece id below \(sourceVocabSize)")
            }
        }
        self.init(frequent: frequent, translations: translations, targetVocabSize: targetVocabSize)
    }

    // MARK: Building one

    /// Estimates p(t | s) with IBM Model 1 (`iterations` rounds of EM, a NULL source word included) on
    /// sentence pairs of ids, and keeps the `keep` most likely target pieces per source piece; counts the
    /// target pieces for `frequent`.
    package static func build(pairs: [(source: [Int32], target: [Int32])], sourceVocabSize: Int, targetVocabSize: Int,
                              iterations: Int = 5, keep: Int = 100) -> Shortlist {
        // Each co-occurring (source, target) pair gets an index; each sentence pair its table of indices.
        let null = Int32(sourceVocabSize)
        var pairIndex: [UInt64: Int32] = [:]
        var pairSource: [Int32] = [], pairTarget: [Int32] = []
        var cells: [Int32] = []            // per sentence pair: (|S|+1) × |T| pair indices, target-major
        var targetFrequency = [Int](repeating: 0, count: targetVocabSize)
        for (source, target) in pairs {
            let sources = source + [null]
            for t in target {
                targetFrequency[Int(t)] += 1
                for s in sources {
                    let key = UInt64(UInt32(s)) << 32 | UInt64(UInt32(t))
                    if let index = pairIndex[key] {
                        cells.append(index)
                    } else {
                        let index = Int32(pairSource.count)
                        pairIndex[key] = index
                        pairSource.append(s)
                        pairTarget.append(t)
                        cells.append(index)
                    }
                }
            }
        }
        pairIndex = [:]
        var probability = [Float](repeating: 1, count: pairSource.count)
        var counts = [Float](repeating: 0, count: pairSource.count)
        var totals = [Float](repeating: 0, count: sourceVocabSize + 1)
        for _ in 0..<iterations {
            for i in counts.indices { counts[i] = 0 }
            for i in totals.indices { totals[i] = 0 }
            var offset = 0
            for (source, target) in pairs {
                let width = source.count + 1
                for _ in target {
                    var sum: Float = 0
                    for c in offset..<offset + width { sum += probability[Int(cells[c])] }
                    for c in offset..<offset + width {
                        let index = Int(cells[c])
                        let share = probability[index] / sum
                        counts[index] += share
                        totals[Int(pairSource[index])] += share
                    }
                    offset += width
                }
            }
            for i in probability.indices { probability[i] = counts[i] / max(totals[Int(pairSource[i])], .leastNormalMagnitude) }
        }
        var bySource = [[(Int32, Float)]](repeating: [], count: sourceVocabSize)
        for i in probability.indices where pairSource[i] != null {
            bySource[Int(pairSource[i])].append((pairTarget[i], probability[i]))
        }
        let translations = bySource.map { list in
            list.sorted { $0.1 != $1.1 ? $0.1 > $1.1 : $0.0 < $1.0 }.prefix(keep).map(\.0)
        }
        let seen: [Int32] = (0..<Int32(targetVocabSize)).filter { targetFrequency[Int($0)] > 0 }
        let frequent = seen.sorted { (a: Int32, b: Int32) -> Bool in
            let fa = targetFrequency[Int(a)], fb = targetFrequency[Int(b)]
            return fa != fb ? fa > fb : a < b
        }
        return Shortlist(frequent: Array(frequent.prefix(max(keep, 1000))), translations: translations, targetVocabSize: targetVocabSize)
    }
}
