import NMTTensor
import NMTText

/// Sequences of token ids by index: the binary datasets of mt-preprocess, or arrays in tests.
protocol TokenSequences {
    var count: Int { get }
    func tokens(_ i: Int) -> UnsafeBufferPointer<Int32>
}

extension TokenDataset: TokenSequences {}

/// Token sequences held in memory.
final class InMemorySequences: TokenSequences {
    private let storage: UnsafeMutablePointer<Int32>
    private let offsets: [Int]

    init(_ sequences: [[Int32]]) {
        var o = [0]
        for s in sequences { o.append(o.last! + s.count) }
        offsets = o
        storage = .allocate(capacity: max(1, o.last!))
        for (i, s) in sequences.enumerated() { (storage + o[i]).initialize(from: s, count: s.count) }
    }

    deinit { storage.deallocate() }

    var count: Int { offsets.count - 1 }

    func tokens(_ i: Int) -> UnsafeBufferPointer<Int32> {
        UnsafeBufferPointer(start: storage + offsets[i], count: offsets[i + 1] - offsets[i])
    }
}

/// How batches are sized: a fixed number of sentence pairs, or a budget of target tokens
/// (padding included) per batch.
enum BatchSize: Codable, Equatable, Sendable {
    case sentences(Int)
    case tokens(Int)
}

/// The order of one epoch: pairs shuffled from (seed, epoch), sorted by length inside pools of
/// about 50 batches so that each batch holds similar lengths, cut into batches, and the batches shuffled.
/// The same seed and epoch always give the same batches, which is what makes `--resume` exact.
enum Batcher {
    static func epochBatches(sourceLengths: [Int], targetLengths: [Int], size: BatchSize,
                                    seed: UInt64, epoch: Int) -> [[Int]] {
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
}
