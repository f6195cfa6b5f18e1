import NMTTensor
import NMTText

/// Sequences of token ids by index: the binary datasets of mt-preprocess, or arrays in tests.
protocol TokenSequences {
    var count: Int { get }
    func tokens(_ i: Int) -> UnsafeBufferPointer<Int32>
    /// Every sequence's length, 2 bytes each (per-pair memory stays small on corpora of millions).
    func sentenceLengths() throws -> [UInt16]
    /// Sequence `i` into `ids` (replacing its contents), read in the way that keeps the least of the
    /// corpus in memory.
    func readTokens(_ i: Int, into ids: inout [Int32]) throws
}

extension TokenSequences {
    func sentenceLengths() throws -> [UInt16] {
        try (0..<count).map { i in
            guard let length = UInt16(exactly: tokens(i).count) else {
                throw TrainingError.badConfig("sentence \(i) has \(tokens(i).count) tokens; training takes at most \(UInt16.max)")
            }
            return length
        }
    }

    func readTokens(_ i: Int, into ids: inout [Int32]) throws {
        ids.removeAll(keepingCapacity: true)
        ids.append(contentsOf: tokens(i))
    }
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

/// The batches of one epoch, compactly (4 bytes per pair): `order` holds the pair indices batch after
/// batch, batch b being `order[starts[b] ..< starts[b + 1]]`, and `sequence` the order in which the
/// batches are trained.
struct EpochBatches {
    let order: [UInt32]
    let starts: [UInt32]
    let sequence: [UInt32]

    var count: Int { sequence.count }

    /// The k-th batch trained in the epoch: indices of its pairs.
    subscript(k: Int) -> ArraySlice<UInt32> {
        let b = Int(sequence[k])
        return order[Int(starts[b])..<Int(starts[b + 1])]
    }
}

/// The order of one epoch: pairs shuffled from (seed, epoch), sorted by length inside pools of
/// about 50 batches so that each batch holds similar lengths, cut into batches, and the batches shuffled.
/// The same seed and epoch always give the same batches, which is what makes `--resume` exact.
/// Everything happens in place in one array of 4-byte pair indices: no sentence is read or copied.
enum Batcher {
    static func epochBatches(sourceLengths: [UInt16], targetLengths: [UInt16], size: BatchSize,
                             seed: UInt64, epoch: Int) -> EpochBatches {
        precondition(sourceLengths.count == targetLengths.count && sourceLengths.count < Int(UInt32.max))
        var rng = RandomSource(seed: seed &+ UInt64(epoch) &* 0x9E37_79B9)
        var order = (0..<UInt32(sourceLengths.count)).map { $0 }
        order.shuffle(using: &rng)
        let typicalBatch: Int
        switch size {
        case .sentences(let n): typicalBatch = n
        case .tokens(let t):
            let averageTarget = targetLengths.reduce(0) { $0 + Int($1) } / max(1, targetLengths.count)
            typicalBatch = max(1, t / max(1, averageTarget + 1))
        }
        let pool = max(1, typicalBatch * 50)
        var starts: [UInt32] = []
        for start in stride(from: 0, to: order.count, by: pool) {
            let end = min(order.count, start + pool)
            order[start..<end].sort {
                (targetLengths[Int($0)], sourceLengths[Int($0)]) < (targetLengths[Int($1)], sourceLengths[Int($1)])
            }
            var count = 0, longest = 0
            for position in start..<end {
                let i = Int(order[position])
                let length = max(Int(targetLengths[i]) + 1, Int(sourceLengths[i]))
                let full: Bool
                switch size {
                case .sentences(let n): full = count == n
                case .tokens(let t): full = count > 0 && max(longest, length) * (count + 1) > t
                }
                if count == 0 || full {
                    starts.append(UInt32(position))
                    count = 0
                    longest = 0
                }
                count += 1
                longest = max(longest, length)
            }
        }
        starts.append(UInt32(order.count))
        var sequence = (0..<UInt32(starts.count - 1)).map { $0 }
        sequence.shuffle(using: &rng)
        return EpochBatches(order: order, starts: starts, sequence: sequence)
    }
}
