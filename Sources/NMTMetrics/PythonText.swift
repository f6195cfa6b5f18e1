// Python-compatible string primitives on arrays of Unicode scalar values.
//
// sacreBLEU is written in Python, whose `str` is a sequence of code points: `len`, slicing,
// `str.split()`, `str.rstrip()` and `str.lower()` all work on code points with Python's own
// definition of whitespace. To agree with it exactly, the metrics work on `[UInt32]` buffers of
// scalar values (never on Swift `Character`s, which are grapheme clusters).

/// Code-point level helpers that reproduce the semantics of Python 3's `str` methods.
enum PythonText {
    /// Python's `str.isspace()` for one code point: the characters `str.split()` and
    /// `str.strip()` treat as whitespace (bidirectional class WS, B or S, or category Zs).
    @inline(__always)
    static func isSpace(_ c: UInt32) -> Bool {
        if c < 0x80 {
            return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20)
        }
        switch c {
        case 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000:
            return true
        default:
            return false
        }
    }

    /// The scalar values of `s`, appended to `out` (which is emptied first).
    @inline(__always)
    static func scalars(of s: String, into out: inout [UInt32]) {
        out.removeAll(keepingCapacity: true)
        for u in s.unicodeScalars { out.append(u.value) }
    }

    /// Builds a `String` from scalar values.
    static func string(from scalars: [UInt32]) -> String {
        var s = String.UnicodeScalarView()
        for v in scalars {
            if let u = Unicode.Scalar(v) { s.append(u) }
        }
        return String(s)
    }

    /// Python's `str.rstrip()` (no argument): drops trailing whitespace in place.
    @inline(__always)
    static func rstrip(_ s: inout [UInt32]) {
        var n = s.count
        while n > 0 && isSpace(s[n - 1]) { n -= 1 }
        if n < s.count { s.removeLast(s.count - n) }
    }

    /// Python's `str.strip()` (no argument), in place.
    static func strip(_ s: inout [UInt32]) {
        rstrip(&s)
        var k = 0
        while k < s.count && isSpace(s[k]) { k += 1 }
        if k > 0 { s.removeFirst(k) }
    }

    /// Python's `str.split()` with no separator: the maximal runs of non-whitespace code
    /// points, as `[start, end)` index pairs.
    static func split(_ s: [UInt32]) -> [Range<Int>] {
        var out: [Range<Int>] = []
        var i = 0
        let n = s.count
        while i < n {
            while i < n && isSpace(s[i]) { i += 1 }
            if i == n { break }
            let start = i
            while i < n && !isSpace(s[i]) { i += 1 }
            out.append(start..<i)
        }
        return out
    }

    /// Python's `str.lower()`: full Unicode lowercase mapping per code point (which can expand,
    /// e.g. U+0130 → "i̇"), with the context-dependent final-sigma rule for U+03A3.
    /// `cache` memoizes the non-ASCII mappings.
    static func lower(_ s: [UInt32], into out: inout [UInt32], cache: inout [UInt32: [UInt32]]) {
        out.removeAll(keepingCapacity: true)
        out.reserveCapacity(s.count)
        for i in 0..<s.count {
            let c = s[i]
            if c < 0x80 {
                out.append((c >= 0x41 && c <= 0x5A) ? c + 0x20 : c)
            } else if c == 0x3A3 {
                out.append(isFinalSigma(s, at: i) ? 0x3C2 : 0x3C3)
            } else if let m = cache[c] {
                out.append(contentsOf: m)
            } else {
                var m: [UInt32] = []
                if let u = Unicode.Scalar(c) {
                    for v in u.properties.lowercaseMapping.unicodeScalars { m.append(v.value) }
                } else {
                    m = [c]
                }
                cache[c] = m
                out.append(contentsOf: m)
            }
        }
    }

    /// Python's `str.lower()` for a whole string.
    static func lower(_ s: String) -> String {
        var a: [UInt32] = []
        var b: [UInt32] = []
        var cache: [UInt32: [UInt32]] = [:]
        scalars(of: s, into: &a)
        lower(a, into: &b, cache: &cache)
        return string(from: b)
    }

    /// Unicode's Final_Sigma context, as CPython evaluates it:
    /// `\p{cased} \p{case-ignorable}* U+03A3 !( \p{case-ignorable}* \p{cased} )`.
    private static func isFinalSigma(_ s: [UInt32], at i: Int) -> Bool {
        var j = i - 1
        var c: UInt32 = 0
        while j >= 0 {
            c = s[j]
            if !isCaseIgnorable(c) { break }
            j -= 1
        }
        guard j >= 0 && isCased(c) else { return false }
        j = i + 1
        while j < s.count {
            c = s[j]
            if !isCaseIgnorable(c) { break }
            j += 1
        }
        return j == s.count || !isCased(c)
    }

    private static func isCased(_ c: UInt32) -> Bool {
        Unicode.Scalar(c)?.properties.isCased ?? false
    }

    private static func isCaseIgnorable(_ c: UInt32) -> Bool {
        Unicode.Scalar(c)?.properties.isCaseIgnorable ?? false
    }
}
