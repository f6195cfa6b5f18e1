// Exact n-gram matching without per-token String allocations.
//
// For one segment (a hypothesis and its references) every token (a word for BLEU, a character
// for chrF) gets a small dense id, assigned by content to the hypothesis's tokens; a reference
// token that does not occur in the hypothesis gets -1. N-grams are then numbered hierarchically:
// the id of the n-gram starting at position i is the id of the pair (id of the (n-1)-gram at i,
// id of the token at i+n-1). Two n-grams get the same id exactly when they are equal, so the
// counts are exact (hashes only place entries in tables; every hit is verified). Only
// hypothesis n-grams are inserted; a reference n-gram absent from the hypothesis can never match
// and is marked -1.

/// 64-bit hashing of token contents (scalar values).
enum TokenHash {
    static let seed: UInt64 = 0xcbf2_9ce4_8422_2325

    @inline(__always)
    static func add(_ h: UInt64, _ c: UInt32) -> UInt64 {
        (h ^ UInt64(c)) &* 0x0000_0100_0000_01B3
    }

    @inline(__always)
    static func finish(_ h: UInt64) -> UInt64 {
        mix(h)
    }

    /// splitmix64's finalizer.
    @inline(__always)
    static func mix(_ k: UInt64) -> UInt64 {
        var x = k
        x ^= x >> 30
        x = x &* 0xbf58_476d_1ce4_e5b9
        x ^= x >> 27
        x = x &* 0x94d0_49bb_1331_11eb
        x ^= x >> 31
        return x
    }
}

/// A growable, manually managed buffer of trivial values (no copy-on-write checks in hot loops).
/// Owned by exactly one object; never copied.
struct RawBuffer<T> {
    private(set) var base: UnsafeMutablePointer<T>
    private(set) var capacity: Int

    init(capacity: Int, fill: T) {
        self.capacity = max(1, capacity)
        base = .allocate(capacity: self.capacity)
        base.initialize(repeating: fill, count: self.capacity)
    }

    /// Grows to at least `n` elements, keeping the first `keep` and filling the rest with `fill`.
    mutating func reserve(_ n: Int, keep: Int, fill: T) {
        guard n > capacity else { return }
        var cap = capacity
        while cap < n { cap *= 2 }
        let p = UnsafeMutablePointer<T>.allocate(capacity: cap)
        p.moveInitialize(from: base, count: keep)
        (p + keep).initialize(repeating: fill, count: cap - keep)
        base.deallocate()
        base = p
        capacity = cap
    }

    func free() { base.deallocate() }

    @inline(__always)
    subscript(i: Int) -> T {
        get { base[i] }
        nonmutating set { base[i] = newValue }
    }
}

/// An open-addressing map from 64-bit keys to dense ids 0, 1, 2, ..., emptied in time
/// proportional to its number of entries.
final class DenseIDTable {
    private var keys: RawBuffer<UInt64>
    private var ids: RawBuffer<Int32>
    /// The occupied slots, in insertion order (so `used[id]` is the slot of `id`).
    private var used: RawBuffer<Int32>
    private var shift: UInt64
    private(set) var count = 0

    init(capacity: Int = 256) {
        var cap = 16
        while cap < capacity { cap <<= 1 }
        keys = RawBuffer(capacity: cap, fill: 0)
        ids = RawBuffer(capacity: cap, fill: -1)
        used = RawBuffer(capacity: cap, fill: 0)
        shift = UInt64(64 - cap.trailingZeroBitCount)
    }

    deinit {
        keys.free()
        ids.free()
        used.free()
    }

    func reset() {
        for k in 0..<count { ids[Int(used[k])] = -1 }
        count = 0
    }

    /// Fibonacci hashing: the top bits of key × 2^64/φ (cheap, and spreads structured keys).
    @inline(__always)
    private func slot(_ key: UInt64) -> Int {
        Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> shift)
    }

    /// The id of `key`, inserting it with the next id if absent.
    @inline(__always)
    func intern(_ key: UInt64) -> Int32 {
        if (count + 1) &* 2 > ids.capacity { grow() }
        let mask = ids.capacity - 1
        var i = slot(key)
        while true {
            let v = ids[i]
            if v < 0 {
                let id = Int32(truncatingIfNeeded: count)
                ids[i] = id
                keys[i] = key
                used[count] = Int32(truncatingIfNeeded: i)
                count += 1
                return id
            }
            if keys[i] == key { return v }
            i = (i &+ 1) & mask
        }
    }

    /// The id of `key`, or -1 if absent.
    @inline(__always)
    func lookup(_ key: UInt64) -> Int32 {
        let mask = ids.capacity - 1
        var i = slot(key)
        while true {
            let v = ids[i]
            if v < 0 { return -1 }
            if keys[i] == key { return v }
            i = (i &+ 1) & mask
        }
    }

    private func grow() {
        let oldKeys = keys, oldIDs = ids, oldUsed = used
        let cap = oldIDs.capacity * 2
        keys = RawBuffer(capacity: cap, fill: 0)
        ids = RawBuffer(capacity: cap, fill: -1)
        used = RawBuffer(capacity: cap, fill: 0)
        shift = UInt64(64 - cap.trailingZeroBitCount)
        let mask = cap - 1
        for k in 0..<count {
            let s = Int(oldUsed[k])
            let key = oldKeys[s]
            var i = slot(key)
            while ids[i] >= 0 { i = (i &+ 1) & mask }
            ids[i] = oldIDs[s]
            keys[i] = key
            used[k] = Int32(truncatingIfNeeded: i)
        }
        oldKeys.free()
        oldIDs.free()
        oldUsed.free()
    }
}

/// Assigns dense ids to tokens by content: tokens are spans of a scalar buffer (the
/// hypothesis's), looked up from the same or other buffers by hash and verified by comparison.
struct TokenInterner {
    private var slotHash: [UInt64]
    private var slotID: [Int32]
    private var mask: Int
    private var used: [Int32] = []
    private var idStart: [Int32] = []
    private var idLength: [Int32] = []

    var count: Int { idStart.count }

    /// An empty interner; storage is allocated on the first insertion.
    init() {
        slotHash = []
        slotID = []
        mask = 0
    }

    mutating func reset() {
        for s in used { slotID[Int(s)] = -1 }
        used.removeAll(keepingCapacity: true)
        idStart.removeAll(keepingCapacity: true)
        idLength.removeAll(keepingCapacity: true)
    }

    /// The id of the token `owner[start..<start+length]`, inserting it if new. All inserted
    /// tokens must come from the same `owner` buffer, which must not change until `reset()`.
    @inline(__always)
    mutating func intern(_ owner: [UInt32], start: Int, length: Int, hash: UInt64) -> Int32 {
        if (count + 1) &* 2 > slotID.count { grow() }
        var i = Int(truncatingIfNeeded: hash) & mask
        while true {
            let v = slotID[i]
            if v < 0 {
                let id = Int32(count)
                slotID[i] = id
                slotHash[i] = hash
                used.append(Int32(i))
                idStart.append(Int32(start))
                idLength.append(Int32(length))
                return id
            }
            if slotHash[i] == hash && equal(owner, Int(idStart[Int(v)]), Int(idLength[Int(v)]), owner, start, length) {
                return v
            }
            i = (i &+ 1) & mask
        }
    }

    /// The id of the token `other[start..<start+length]`, or -1 if no equal token was inserted.
    @inline(__always)
    func lookup(_ other: [UInt32], start: Int, length: Int, hash: UInt64, owner: [UInt32]) -> Int32 {
        if idStart.isEmpty { return -1 }
        var i = Int(truncatingIfNeeded: hash) & mask
        while true {
            let v = slotID[i]
            if v < 0 { return -1 }
            if slotHash[i] == hash && equal(owner, Int(idStart[Int(v)]), Int(idLength[Int(v)]), other, start, length) {
                return v
            }
            i = (i &+ 1) & mask
        }
    }

    @inline(__always)
    private func equal(_ a: [UInt32], _ sa: Int, _ la: Int, _ b: [UInt32], _ sb: Int, _ lb: Int) -> Bool {
        if la != lb { return false }
        var k = 0
        while k < la {
            if a[sa + k] != b[sb + k] { return false }
            k += 1
        }
        return true
    }

    private mutating func grow() {
        let oldHash = slotHash, oldID = slotID, oldUsed = used
        let cap = max(256, slotID.count * 2)
        slotHash = [UInt64](repeating: 0, count: cap)
        slotID = [Int32](repeating: -1, count: cap)
        mask = cap - 1
        used.removeAll(keepingCapacity: true)
        for s in oldUsed {
            let h = oldHash[Int(s)]
            var i = Int(truncatingIfNeeded: h) & mask
            while slotID[i] >= 0 { i = (i &+ 1) & mask }
            slotID[i] = oldID[Int(s)]
            slotHash[i] = h
            used.append(Int32(i))
        }
    }
}

/// Counts clipped n-gram matches of one hypothesis against its references, given the unigram
/// ids (hypothesis first, then each reference; ids 0..<distinct for hypothesis tokens, -1 for
/// reference tokens absent from the hypothesis).
final class NgramMatcher {
    private let table = DenseIDTable()
    /// Unigram ids: the hypothesis's, then each reference's.
    private var tokens = RawBuffer<Int32>(capacity: 256, fill: 0)
    private(set) var tokenCount = 0
    /// N-gram ids of the current order (same layout as `tokens`).
    private var current = RawBuffer<Int32>(capacity: 256, fill: 0)
    private(set) var hypothesisLength = 0
    private(set) var referenceStarts: [Int] = []
    private(set) var referenceLengths: [Int] = []
    private var distinctUnigrams = 0
    private var seen = RawBuffer<Int32>(capacity: 256, fill: 0)
    private var count = RawBuffer<Int32>(capacity: 256, fill: 0)
    private var best = RawBuffer<Int32>(capacity: 256, fill: 0)

    init() {}

    deinit {
        tokens.free()
        current.free()
        seen.free()
        count.free()
        best.free()
    }

    /// Starts a new segment.
    func reset() {
        tokenCount = 0
        referenceStarts.removeAll(keepingCapacity: true)
        referenceLengths.removeAll(keepingCapacity: true)
        hypothesisLength = 0
    }

    @inline(__always)
    func appendToken(_ id: Int32) {
        if tokenCount == tokens.capacity { tokens.reserve(tokenCount + 1, keep: tokenCount, fill: 0) }
        tokens[tokenCount] = id
        tokenCount += 1
    }

    /// Marks the tokens appended so far as the hypothesis, whose ids are 0..<distinct.
    func endHypothesis(distinct: Int) {
        hypothesisLength = tokenCount
        distinctUnigrams = distinct
    }

    /// Marks the tokens appended since the previous call (or `endHypothesis`) as one reference.
    func endReference() {
        let start = referenceStarts.isEmpty ? hypothesisLength : referenceStarts[referenceStarts.count - 1] + referenceLengths[referenceLengths.count - 1]
        referenceStarts.append(start)
        referenceLengths.append(tokenCount - start)
    }

    /// Computes the ids of the n-grams of order `n` in `current` (which holds order n-1) and
    /// returns how many distinct hypothesis n-grams there are.
    private func advance(to n: Int) -> Int {
        let tok = tokens.base
        if n == 1 {
            if current.capacity < tokenCount { current.reserve(tokenCount, keep: 0, fill: 0) }
            current.base.update(from: tok, count: tokenCount)
            return distinctUnigrams
        }
        let cur = current.base
        table.reset()
        let h = hypothesisLength
        if h >= n {
            for i in 0...(h - n) {
                let key = UInt64(UInt32(bitPattern: cur[i])) << 32 | UInt64(UInt32(bitPattern: tok[i + n - 1]))
                cur[i] = table.intern(key)
            }
        }
        for r in 0..<referenceStarts.count {
            let s = referenceStarts[r], l = referenceLengths[r]
            if l < n { continue }
            for i in s...(s + l - n) {
                let p = cur[i], t = tok[i + n - 1]
                if p < 0 || t < 0 {
                    cur[i] = -1
                } else {
                    cur[i] = table.lookup(UInt64(UInt32(bitPattern: p)) << 32 | UInt64(UInt32(bitPattern: t)))
                }
            }
        }
        return table.count
    }

    private func ensure(_ k: Int) {
        if seen.capacity < k {
            seen.reserve(k, keep: 0, fill: 0)
            count.reserve(k, keep: 0, fill: 0)
            best.reserve(k, keep: 0, fill: 0)
        }
    }

    /// Adds `delta` to `counts[id]` (or sets it, with `reset`) for every n-gram of reference `r` of order
    /// `n` that also occurs in the hypothesis (id >= 0); `advance(to: n)` must have numbered them.
    private func tallyReference(_ r: Int, order n: Int, into counts: UnsafeMutablePointer<Int32>, reset: Bool = false) {
        let s = referenceStarts[r], l = referenceLengths[r]
        guard l >= n else { return }
        let cur = current.base
        for i in s...(s + l - n) {
            let id = cur[i]
            if id >= 0 { if reset { counts[Int(id)] = 0 } else { counts[Int(id)] += 1 } }
        }
    }

    /// BLEU's clipped matches: for each order 1...maxOrder, the hypothesis n-gram counts clipped
    /// by the maximum count over the references, written to `correct[n-1]`.
    func clippedMatches(maxOrder: Int, correct: inout [Int]) {
        let h = hypothesisLength
        let nrefs = referenceStarts.count
        for n in 1...maxOrder {
            guard h >= n else { correct[n - 1] = 0; continue }
            let k = advance(to: n)
            ensure(k)
            let cur = current.base, best = best.base, seen = seen.base, count = count.base
            best.update(repeating: 0, count: k)
            seen.update(repeating: 0, count: k)
            if nrefs == 1 {
                tallyReference(0, order: n, into: best)
            } else {
                for r in 0..<nrefs {
                    let s = referenceStarts[r], l = referenceLengths[r]
                    if l < n { continue }
                    tallyReference(r, order: n, into: count)
                    for i in s...(s + l - n) {
                        let id = cur[i]
                        if id >= 0 {
                            let j = Int(id)
                            if count[j] > best[j] { best[j] = count[j] }
                            count[j] = 0
                        }
                    }
                }
            }
            var c = 0
            for i in 0...(h - n) {
                let j = Int(cur[i])
                seen[j] += 1
                if seen[j] <= best[j] { c += 1 }
            }
            correct[n - 1] = c
        }
    }

    /// chrF's matches, per reference: `matches[r * maxOrder + n - 1]` is the number of
    /// hypothesis n-grams matched in reference r (clipped by that reference's counts).
    func perReferenceMatches(maxOrder: Int, matches: inout [Int]) {
        let h = hypothesisLength
        let nrefs = referenceStarts.count
        matches.removeAll(keepingCapacity: true)
        matches.append(contentsOf: repeatElement(0, count: nrefs * maxOrder))
        guard maxOrder >= 1 else { return }
        for n in 1...maxOrder {
            guard h >= n else { continue }
            let k = advance(to: n)
            ensure(k)
            let cur = current.base, seen = seen.base, count = count.base
            seen.update(repeating: 0, count: k)
            count.update(repeating: 0, count: k)
            for r in 0..<nrefs where referenceLengths[r] >= n {
                tallyReference(r, order: n, into: count)
                var c = 0
                for i in 0...(h - n) {
                    let j = Int(cur[i])
                    seen[j] += 1
                    if seen[j] <= count[j] { c += 1 }
                }
                matches[r * maxOrder + n - 1] = c
                for i in 0...(h - n) { seen[Int(cur[i])] = 0 }
                tallyReference(r, order: n, into: count, reset: true)
            }
        }
    }
}
