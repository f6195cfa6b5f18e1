import NMTTensor

/// A uniform random sample of at most `capacity` sentences from a stream of any length (reservoir
/// sampling, Vitter's algorithm R), which is what SentencePiece trains on: memory is bounded by the
/// sample, not by the corpus. The same seed and stream give the same sample.
///
/// Sentences are kept back to back in one byte arena; a replaced sentence leaves a hole. Once the sample
/// is full, the arena never grows by doubling (whose peak would depend on where the doubling falls): when
/// it is full it is compacted into a new one with room for as many bytes again as the live ones, so it
/// stays below twice the sample's size, whatever the corpus size.
struct SentenceSample {
    /// At most this many sentences are kept (`Int.max`: all of them).
    let capacity: Int
    /// Sentences offered so far.
    private(set) var seen = 0
    private var arena: [UInt8] = []
    private var slots: [Range<Int>] = []
    private var liveBytes = 0
    private var rng: RandomSource

    init(capacity: Int, seed: UInt64 = 0x5EED_5A3E) {
        precondition(capacity > 0)
        self.capacity = capacity
        self.rng = RandomSource(seed: seed)
    }

    /// Number of sentences in the sample.
    var count: Int { slots.count }

    /// Offers one sentence; it enters the sample with probability capacity / seen.
    mutating func offer(_ sentence: UnsafeRawBufferPointer) {
        seen += 1
        if slots.count < capacity {
            slots.append(store(sentence))
            return
        }
        let j = Int(rng.next() % UInt64(seen))
        guard j < capacity else { return }
        liveBytes -= slots[j].count
        if arena.count + sentence.count > arena.capacity { compact(reserving: sentence.count) }
        slots[j] = store(sentence)
    }

    /// Calls `body` with the sampled sentences, in sample order.
    func withSentences<R>(_ body: ([UnsafeRawBufferPointer]) throws -> R) rethrows -> R {
        try arena.withUnsafeBytes { raw in
            try body(slots.map { UnsafeRawBufferPointer(rebasing: raw[$0]) })
        }
    }

    private mutating func store(_ sentence: UnsafeRawBufferPointer) -> Range<Int> {
        let at = arena.count
        arena.append(contentsOf: sentence)
        liveBytes += sentence.count
        return at..<arena.count
    }

    private mutating func compact(reserving extra: Int) {
        var packed: [UInt8] = []
        packed.reserveCapacity(2 * liveBytes + extra + 4096)
        for k in slots.indices {
            let at = packed.count
            packed.append(contentsOf: arena[slots[k]])
            slots[k] = at..<packed.count
        }
        arena = packed
    }
}
