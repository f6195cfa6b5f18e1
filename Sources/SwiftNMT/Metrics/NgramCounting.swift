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

/// An open-addressing map from 64-bit keys to dense ids 0, 1, 2, ..., emptied in time
/// proportional to its number of entries.
struct DenseIDTable {
    private var keys: [UInt64]
    private var ids: [Int32]
    private var mask: Int
    private var used: [Int32] = []
    private(set) var count = 0

    /// An empty table; storage is allocated on the first insertion.
    init() {
        keys = []
        ids = []
        mask = 0
    }

    mutating func reset() {
        for s in used { ids[Int(s)] = -1 }
        used.removeAll(keepingCapacity: true)
        count = 0
    }

    /// The id of `key`, inserting it with the next id if absent.
    @inline(__always)
    mutating func intern(_ key: UInt64) -> Int32 {
        if (count + 1) &* 2 > ids.count { grow() }
        var i = Int(truncatingIfNeeded: TokenHash.mix(key)) & mask
        while true {
            let v = ids[i]
            if v < 0 {
                let id = Int32(count)
                ids[i] = id
                keys[i] = key
                used.append(Int32(i))
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
        if count == 0 { return -1 }
        var i = Int(truncatingIfNeeded: TokenHash.mix(key)) & mask
        while true {
            let v = ids[i]
            if v < 0 { return -1 }
            if keys[i] == key { return v }
            i = (i &+ 1) & mask
        }
    }

    private mutating func grow() {
        let oldKeys = keys, oldIDs = ids, oldUsed = used
        let cap = max(256, ids.count * 2)
        keys = [UInt64](repeating: 0, count: cap)
        ids = [Int32](repeating: -1, count: cap)
        mask = cap - 1
        used.removeAll(keepingCapacity: true)
        for s in oldUsed {
            let key = oldKeys[Int(s)]
            var i = Int(truncatingIfNeeded: TokenHash.mix(key)) & mask
            while ids[i] >= 0 { i = (i &+ 1) & mask }
            ids[i] = oldIDs[Int(s)]
            keys[i] = key
            used.append(Int32(i))
        }
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
struct NgramMatcher {
    private var table = DenseIDTable()
    /// Unigram ids: the hypothesis's, then each reference's.
    private(set) var tokens: [Int32] = []
    private var current: [Int32] = []
    private(set) var hypothesisLength = 0
    private(set) var referenceStarts: [Int] = []
    private(set) var referenceLengths: [Int] = []
    private var distinctUnigrams = 0
    private var seen: [Int32] = []
    private var count: [Int32] = []
    private var best: [Int32] = []

    /// Starts a new segment.
    mutating func reset() {
        tokens.removeAll(keepingCapacity: true)
        referenceStarts.removeAll(keepingCapacity: true)
        referenceLengths.removeAll(keepingCapacity: true)
        hypothesisLength = 0
    }

    @inline(__always)
    mutating func appendToken(_ id: Int32) { tokens.append(id) }

    /// Marks the tokens appended so far as the hypothesis, whose ids are 0..<distinct.
    mutating func endHypothesis(distinct: Int) {
        hypothesisLength = tokens.count
        distinctUnigrams = distinct
    }

    /// Marks the tokens appended since the previous call (or `endHypothesis`) as one reference.
    mutating func endReference() {
        let start = referenceStarts.isEmpty ? hypothesisLength : referenceStarts[referenceStarts.count - 1] + referenceLengths[referenceLengths.count - 1]
        referenceStarts.append(start)
        referenceLengths.append(tokens.count - start)
    }

    /// Computes the ids of the n-grams of order `n` in `current` (which holds order n-1) and
    /// returns how many distinct hypothesis n-grams there are.
    private mutating func advance(to n: Int) -> Int {
        if n == 1 {
            current.removeAll(keepingCapacity: true)
            current.append(contentsOf: tokens)
            return distinctUnigrams
        }
        table.reset()
        let h = hypothesisLength
        if h >= n {
            for i in 0...(h - n) {
                let key = UInt64(UInt32(bitPattern: current[i])) << 32 | UInt64(UInt32(bitPattern: tokens[i + n - 1]))
                current[i] = table.intern(key)
            }
        }
        for r in 0..<referenceStarts.count {
            let s = referenceStarts[r], l = referenceLengths[r]
            if l < n { continue }
            for i in s...(s + l - n) {
                let p = current[i], t = tokens[i + n - 1]
                if p < 0 || t < 0 {
                    current[i] = -1
                } else {
                    current[i] = table.lookup(UInt64(UInt32(bitPattern: p)) << 32 | UInt64(UInt32(bitPattern: t)))
                }
            }
        }
        return table.count
    }

    private mutating func ensure(_ k: Int) {
        if seen.count < k {
            let add = k - seen.count
            seen.append(contentsOf: repeatElement(0, count: add))
            count.append(contentsOf: repeatElement(0, count: add))
            best.append(contentsOf: repeatElement(0, count: add))
        }
    }

    /// BLEU's clipped matches: for each order 1...maxOrder, the hypothesis n-gram counts clipped
    /// by the maximum count over the references, written to `correct[n-1]`.
    mutating func clippedMatches(maxOrder: Int, correct: inout [Int]) {
        let h = hypothesisLength
        let nrefs = referenceStarts.count
        for n in 1...maxOrder {
            guard h >= n else { correct[n - 1] = 0; continue }
            let k = advance(to: n)
            ensure(k)
            for i in 0..<k { best[i] = 0; seen[i] = 0 }
            if nrefs == 1 {
                let s = referenceStarts[0], l = referenceLengths[0]
                if l >= n {
                    for i in s...(s + l - n) {
                        let id = current[i]
                        if id >= 0 { best[Int(id)] += 1 }
                    }
                }
            } else {
                for r in 0..<nrefs {
                    let s = referenceStarts[r], l = referenceLengths[r]
                    if l < n { continue }
                    for i in s...(s + l - n) {
                        let id = current[i]
                        if id >= 0 { count[Int(id)] += 1 }
                    }
                    for i in s...(s + l - n) {
                        let id = current[i]
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
                let j = Int(current[i])
                seen[j] += 1
                if seen[j] <= best[j] { c += 1 }
            }
            correct[n - 1] = c
        }
    }

    /// chrF's matches, per reference: `matches[r * maxOrder + n - 1]` is the number of
    /// hypothesis n-grams matched in reference r (clipped by that reference's counts).
    mutating func perReferenceMatches(maxOrder: Int, matches: inout [Int]) {
        let h = hypothesisLength
        let nrefs = referenceStarts.count
        matches.removeAll(keepingCapacity: true)
        matches.append(contentsOf: repeatElement(0, count: nrefs * maxOrder))
        guard maxOrder >= 1 else { return }
        for n in 1...maxOrder {
            guard h >= n else { continue }
            let k = advance(to: n)
            ensure(k)
            for i in 0..<k { seen[i] = 0; count[i] = 0 }
            for r in 0..<nrefs {
                let s = referenceStarts[r], l = referenceLengths[r]
                if l < n { continue }
                for i in s...(s + l - n) {
                    let id = current[i]
                    if id >= 0 { count[Int(id)] += 1 }
                }
                var c = 0
                for i in 0...(h - n) {
                    let j = Int(current[i])
                    seen[j] += 1
                    if seen[j] <= count[j] { c += 1 }
                }
                matches[r * maxOrder + n - 1] = c
                for i in 0...(h - n) { seen[Int(current[i])] = 0 }
                for i in s...(s + l - n) {
                    let id = current[i]
                    if id >= 0 { count[Int(id)] = 0 }
                }
            }
        }
    }
}
