// BLEU tokenizers that reproduce sacreBLEU 2.6.0's `13a`, `intl`, `char`, `zh` and `none`.
//
// sacreBLEU implements them as a series of regular-expression substitutions. Every pattern there
// matches a fixed number (one or two) of code points, so `re.sub` reduces to a left-to-right scan
// that either rewrites a match and jumps past it or copies one code point and moves on. Each
// substitution is one such scan here, from one scalar buffer into another.

/// The tokenizers sacreBLEU offers for BLEU (`-tok`), by their sacreBLEU names.
public enum BLEUTokenizer: String, CaseIterable, Sendable {
    /// No tokenization: the line is split on whitespace only.
    case none
    /// mteval-v13a (WMT's standard): HTML-entity unescaping, then punctuation and symbols split off.
    case v13a = "13a"
    /// mteval-v14 international: Unicode punctuation (category P) and symbols (category S) split off.
    case intl
    /// Every non-whitespace code point is a token.
    case char
    /// Chinese characters become tokens; the rest is tokenized like `13a` (without the unescaping).
    case zh

    /// The tokenizer's name in sacreBLEU signatures (`tok:13a`).
    var signature: String { rawValue }

    /// Tokenizes one line exactly as sacreBLEU does and returns the tokens joined by single spaces.
    /// (BLEU itself also lowercases, if asked, and strips trailing whitespace first.)
    func callAsFunction(_ line: String) -> String {
        let scratch = TokenizerScratch()
        var src: [UInt32] = []
        PythonText.scalars(of: line, into: &src)
        tokenize(&src, scratch: scratch)
        var out: [UInt32] = []
        forEachToken(in: src) { start, length, _ in
            if !out.isEmpty { out.append(0x20) }
            out.append(contentsOf: src[start..<(start + length)])
        }
        return PythonText.string(from: out)
    }

    /// Calls `body(start, length, hash)` for every token of an already tokenized buffer: the
    /// whitespace-separated runs, or for `char` every non-whitespace code point.
    @inline(__always)
    func forEachToken(in s: [UInt32], _ body: (Int, Int, UInt64) -> Void) {
        let n = s.count
        if self == .char {
            for i in 0..<n where !PythonText.isSpace(s[i]) {
                body(i, 1, TokenHash.finish(TokenHash.add(TokenHash.seed, s[i])))
            }
            return
        }
        var i = 0
        while i < n {
            while i < n && PythonText.isSpace(s[i]) { i += 1 }
            if i == n { break }
            let start = i
            var h = TokenHash.seed
            while i < n {
                let c = s[i]
                if PythonText.isSpace(c) { break }
                h = TokenHash.add(h, c)
                i += 1
            }
            body(start, i - start, TokenHash.finish(h))
        }
    }

    /// Rewrites `s` in place into a whitespace-separated token sequence (not yet split).
    func tokenize(_ s: inout [UInt32], scratch: TokenizerScratch) {
        switch self {
        case .none, .char:
            // `none` returns the line as is; `char` joins all code points with spaces, which the
            // whitespace split undoes except that every non-space code point becomes a token —
            // handled by `forEachToken`.
            return
        case .v13a:
            Tokenizer13a.run(&s, scratch: scratch)
        case .intl:
            TokenizerIntl.run(&s, scratch: scratch)
        case .zh:
            TokenizerZh.run(&s, scratch: scratch)
        }
    }
}

/// Reusable buffers for tokenization (one per thread; not shared).
final class TokenizerScratch {
    /// Ping-pong buffers for the substitution passes.
    var a = RawBuffer<UInt32>(capacity: 1024, fill: 0)
    var b = RawBuffer<UInt32>(capacity: 1024, fill: 0)
    var tmp: [UInt32] = []
    var lowerCache: [UInt32: [UInt32]] = [:]
    var lowered: [UInt32] = []

    /// Whether `a` holds the current pass input (else `b`).
    private var inputIsA = true

    init() {}

    deinit {
        a.free()
        b.free()
    }

    /// Starts a chain of passes: returns an input buffer with room for `n` scalars.
    func begin(_ n: Int) -> UnsafeMutablePointer<UInt32> {
        inputIsA = true
        a.reserve(n, keep: 0, fill: 0)
        return a.base
    }

    /// The current pass input.
    var input: UnsafeMutablePointer<UInt32> { inputIsA ? a.base : b.base }

    /// The output buffer for the next pass, with room for `n` scalars.
    func output(_ n: Int) -> UnsafeMutablePointer<UInt32> {
        if inputIsA {
            b.reserve(n, keep: 0, fill: 0)
            return b.base
        }
        a.reserve(n, keep: 0, fill: 0)
        return a.base
    }

    /// Makes the last output the next input.
    func flip() { inputIsA.toggle() }
}

/// Substitution passes over raw buffers. Each reads `n` scalars at `src`, writes to `dst` (which
/// must have room for the documented worst case) and returns the output length.
enum Pass {
    typealias Buffer = UnsafeMutablePointer<UInt32>

    /// `(X)` → ` \1 ` for single code points X with `isX`. Output ≤ 3n.
    @inline(__always)
    static func surround(_ src: UnsafePointer<UInt32>, _ n: Int, _ dst: Buffer, _ isX: (UInt32) -> Bool) -> Int {
        var o = 0
        for i in 0..<n {
            let c = src[i]
            if isX(c) {
                dst[o] = 0x20; dst[o + 1] = c; dst[o + 2] = 0x20
                o += 3
            } else {
                dst[o] = c
                o += 1
            }
        }
        return o
    }

    /// `(X)(Y)` → `\1 \2 ` (or ` \1 \2` with `leading`), scanning left to right without
    /// overlaps like `re.sub`. Output ≤ 2n.
    @inline(__always)
    static func pairs(_ src: UnsafePointer<UInt32>, _ n: Int, _ dst: Buffer, leading: Bool,
                      _ matches: (UInt32, UInt32) -> Bool) -> Int {
        var o = 0
        var i = 0
        while i < n {
            let c = src[i]
            if i + 1 < n && matches(c, src[i + 1]) {
                if leading {
                    dst[o] = 0x20; dst[o + 1] = c; dst[o + 2] = 0x20; dst[o + 3] = src[i + 1]
                } else {
                    dst[o] = c; dst[o + 1] = 0x20; dst[o + 2] = src[i + 1]; dst[o + 3] = 0x20
                }
                o += 4
                i += 2
            } else {
                dst[o] = c
                o += 1
                i += 1
            }
        }
        return o
    }
}

@inline(__always) private func isDigit(_ c: UInt32) -> Bool { c >= 0x30 && c <= 0x39 }
@inline(__always) private func isDotOrComma(_ c: UInt32) -> Bool { c == 0x2E || c == 0x2C }

/// Replaces every occurrence of `pattern` in `s` by `replacement`, left to right and without
/// overlaps (Python's `str.replace`).
private func replaceAll(_ s: inout [UInt32], _ pattern: [UInt32], _ replacement: [UInt32], tmp: inout [UInt32]) {
    let n = s.count, m = pattern.count
    guard m > 0, n >= m else { return }
    let first = pattern[0]
    var found = false
    for i in 0...(n - m) where s[i] == first {
        var ok = true
        for k in 1..<m where s[i + k] != pattern[k] { ok = false; break }
        if ok { found = true; break }
    }
    guard found else { return }
    tmp.removeAll(keepingCapacity: true)
    var i = 0
    while i < n {
        if s[i] == first && i + m <= n {
            var ok = true
            for k in 1..<m where s[i + k] != pattern[k] { ok = false; break }
            if ok {
                tmp.append(contentsOf: replacement)
                i += m
                continue
            }
        }
        tmp.append(s[i])
        i += 1
    }
    swap(&s, &tmp)
}

private func ascii(_ s: StaticString) -> [UInt32] {
    var out: [UInt32] = []
    s.withUTF8Buffer { for b in $0 { out.append(UInt32(b)) } }
    return out
}

/// The post-tokenizer shared by `13a` and `zh` (sacreBLEU's `TokenizerRegexp`).
enum TokenizerRegexp {
    /// `[\{-\~\[-\` -\&\(-\+\:-\@\/]`: ASCII punctuation and symbols except `'`, `,`, `-`, `.`
    /// (and space itself, which is harmless to surround with spaces).
    @inline(__always)
    static func isSplitChar(_ c: UInt32) -> Bool {
        switch c {
        case 0x7B...0x7E, 0x5B...0x60, 0x20...0x26, 0x28...0x2B, 0x3A...0x40, 0x2F: return true
        default: return false
        }
    }

    /// Runs the four substitutions on `s`; with `pad`, on `" " + s + " "` (13a's padding).
    static func run(_ s: inout [UInt32], scratch: TokenizerScratch, pad: Bool = false) {
        let n = s.count + (pad ? 2 : 0)
        var hasDotComma = false, hasDash = false
        for c in s {
            if isDotOrComma(c) { hasDotComma = true } else if c == 0x2D { hasDash = true }
        }
        // 1. `([\{-\~\[-\` -\&\(-\+\:-\@\/])` → ` \1 `  (output ≤ 3n)
        let first = scratch.begin(3 * n)
        var len = 0
        if pad { first[0] = 0x20; first[1] = 0x20; first[2] = 0x20; len = 3 }
        let start = len
        len += s.withUnsafeBufferPointer { b in b.baseAddress.map { Pass.surround($0, b.count, first + start, isSplitChar) } ?? 0 }
        if pad { first[len] = 0x20; first[len + 1] = 0x20; first[len + 2] = 0x20; len += 3 }
        if hasDotComma {
            // 2. `([^0-9])([\.,])` → `\1 \2 `  (each pair pass: output ≤ 2 × input)
            len = Pass.pairs(scratch.input, len, scratch.output(2 * len), leading: false) { !isDigit($0) && isDotOrComma($1) }
            scratch.flip()
            // 3. `([\.,])([^0-9])` → ` \1 \2`
            len = Pass.pairs(scratch.input, len, scratch.output(2 * len), leading: true) { isDotOrComma($0) && !isDigit($1) }
            scratch.flip()
        }
        if hasDash {
            // 4. `([0-9])(-)` → `\1 \2 `
            len = Pass.pairs(scratch.input, len, scratch.output(2 * len), leading: false) { isDigit($0) && $1 == 0x2D }
            scratch.flip()
        }
        s.removeAll(keepingCapacity: true)
        s.append(contentsOf: UnsafeBufferPointer(start: scratch.input, count: len))
    }
}

/// sacreBLEU's `Tokenizer13a`.
enum Tokenizer13a {
    private static let skipped = ascii("<skipped>")
    private static let dashNewline: [UInt32] = [0x2D, 0x0A]
    private static let newline: [UInt32] = [0x0A]
    private static let space: [UInt32] = [0x20]
    private static let entities: [([UInt32], [UInt32])] = [
        (ascii("&quot;"), [0x22]),
        (ascii("&amp;"), [0x26]),
        (ascii("&lt;"), [0x3C]),
        (ascii("&gt;"), [0x3E]),
    ]

    static func run(_ s: inout [UInt32], scratch: TokenizerScratch) {
        var hasLT = false, hasNL = false, hasAmp = false
        for c in s {
            if c == 0x3C { hasLT = true } else if c == 0x0A { hasNL = true } else if c == 0x26 { hasAmp = true }
        }
        if hasLT { replaceAll(&s, skipped, [], tmp: &scratch.tmp) }
        if hasNL {
            replaceAll(&s, dashNewline, [], tmp: &scratch.tmp)
            replaceAll(&s, newline, space, tmp: &scratch.tmp)
        }
        if hasAmp {
            for (pattern, replacement) in entities {
                replaceAll(&s, pattern, replacement, tmp: &scratch.tmp)
            }
        }
        // f' {line} ', then the regular expressions.
        TokenizerRegexp.run(&s, scratch: scratch, pad: true)
    }
}

/// General-category classes used by the `intl` tokenizer (`\p{N}`, `\p{P}`, `\p{S}`).
enum UnicodeClass {
    static let number: UInt8 = 1
    static let punctuation: UInt8 = 2
    static let symbol: UInt8 = 4

    private static let asciiTable: [UInt8] = (0..<128).map { classify(UInt32($0)) }

    @inline(__always)
    static func of(_ c: UInt32) -> UInt8 {
        c < 128 ? asciiTable[Int(c)] : classify(c)
    }

    static func classify(_ c: UInt32) -> UInt8 {
        guard let u = Unicode.Scalar(c) else { return 0 }
        switch u.properties.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber:
            return number
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
             .initialPunctuation, .finalPunctuation, .otherPunctuation:
            return punctuation
        case .mathSymbol, .currencySymbol, .modifierSymbol, .otherSymbol:
            return symbol
        default:
            return 0
        }
    }
}

/// sacreBLEU's `TokenizerV14International`.
enum TokenizerIntl {
    static func run(_ s: inout [UInt32], scratch: TokenizerScratch) {
        var hasP = false, hasS = false
        for c in s {
            let k = UnicodeClass.of(c)
            if k == UnicodeClass.punctuation { hasP = true } else if k == UnicodeClass.symbol { hasS = true }
        }
        guard hasP || hasS else { return }
        let n = s.count
        var len = n
        let first = scratch.begin(n)
        s.withUnsafeBufferPointer { b in if let p = b.baseAddress { first.update(from: p, count: n) } }
        if hasP {
            // 1. `(\P{N})(\p{P})` → `\1 \2 `  (each pair pass: output ≤ 2 × input)
            len = Pass.pairs(scratch.input, len, scratch.output(2 * len), leading: false) {
                UnicodeClass.of($0) != UnicodeClass.number && UnicodeClass.of($1) == UnicodeClass.punctuation
            }
            scratch.flip()
            // 2. `(\p{P})(\P{N})` → ` \1 \2`
            len = Pass.pairs(scratch.input, len, scratch.output(2 * len), leading: true) {
                UnicodeClass.of($0) == UnicodeClass.punctuation && UnicodeClass.of($1) != UnicodeClass.number
            }
            scratch.flip()
        }
        if hasS {
            // 3. `(\p{S})` → ` \1 `  (output ≤ 3 × input)
            len = Pass.surround(scratch.input, len, scratch.output(3 * len)) { UnicodeClass.of($0) == UnicodeClass.symbol }
            scratch.flip()
        }
        s.removeAll(keepingCapacity: true)
        s.append(contentsOf: UnsafeBufferPointer(start: scratch.input, count: len))
    }
}

/// sacreBLEU's `TokenizerZh`.
enum TokenizerZh {
    /// sacreBLEU's `_is_chinese_char`. Its table compares one-character strings against range
    /// bounds, and two bounds were written as `'\u20000'`/`'\u2a6d6'` and `'\u2f800'`/`'\u2fa1d'`,
    /// which Python reads as two-character strings ('\u2000' + '0', ...). By string ordering those
    /// entries cover U+2001...U+2A6D and U+2F81...U+2FA1; that is what sacreBLEU does, so we do too.
    @inline(__always)
    static func isChinese(_ c: UInt32) -> Bool {
        if c < 0x2001 { return false }
        switch c {
        case 0x3400...0x4DB5, 0x4E00...0x9FA5, 0x9FA6...0x9FBB, 0xF900...0xFA2D, 0xFA30...0xFA6A,
             0xFA70...0xFAD9, 0x2001...0x2A6D, 0x2F81...0x2FA1, 0xFF00...0xFFEF, 0x2E80...0x2EFF,
             0x3000...0x303F, 0x31C0...0x31EF, 0x2F00...0x2FDF, 0x2FF0...0x2FFF, 0x3100...0x312F,
             0x31A0...0x31BF, 0xFE10...0xFE1F, 0xFE30...0xFE4F, 0x2600...0x26FF, 0x2700...0x27BF,
             0x3200...0x32FF, 0x3300...0x33FF:
            return true
        default:
            return false
        }
    }

    static func run(_ s: inout [UInt32], scratch: TokenizerScratch) {
        PythonText.strip(&s)
        var any = false
        for c in s where isChinese(c) { any = true; break }
        if any {
            var d = scratch.tmp
            d.removeAll(keepingCapacity: true)
            for c in s {
                if isChinese(c) {
                    d.append(0x20); d.append(c); d.append(0x20)
                } else {
                    d.append(c)
                }
            }
            scratch.tmp = s
            s = d
        }
        TokenizerRegexp.run(&s, scratch: scratch)
    }
}
