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
    public var signature: String { rawValue }

    /// Tokenizes one line exactly as sacreBLEU does and returns the tokens joined by single spaces.
    /// (BLEU itself also lowercases, if asked, and strips trailing whitespace first.)
    public func callAsFunction(_ line: String) -> String {
        var scratch = TokenizerScratch()
        var src: [UInt32] = []
        PythonText.scalars(of: line, into: &src)
        tokenize(&src, scratch: &scratch)
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
    func tokenize(_ s: inout [UInt32], scratch: inout TokenizerScratch) {
        switch self {
        case .none, .char:
            // `none` returns the line as is; `char` joins all code points with spaces, which the
            // whitespace split undoes except that every non-space code point becomes a token —
            // handled by the caller's token splitter (see `TokenSplitter`).
            return
        case .v13a:
            Tokenizer13a.run(&s, scratch: &scratch)
        case .intl:
            TokenizerIntl.run(&s, scratch: &scratch)
        case .zh:
            TokenizerZh.run(&s, scratch: &scratch)
        }
    }
}

/// Reusable buffers for tokenization.
struct TokenizerScratch {
    var tmp: [UInt32] = []
    var lowerCache: [UInt32: [UInt32]] = [:]
    var lowered: [UInt32] = []
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

    static func run(_ s: inout [UInt32], scratch: inout TokenizerScratch) {
        var d = scratch.tmp
        defer { scratch.tmp = d }
        // 1. `([\{-\~\[-\` -\&\(-\+\:-\@\/])` → ` \1 `
        d.removeAll(keepingCapacity: true)
        var hasDotComma = false, hasDash = false
        for c in s {
            if isSplitChar(c) {
                d.append(0x20); d.append(c); d.append(0x20)
            } else {
                if isDotOrComma(c) { hasDotComma = true } else if c == 0x2D { hasDash = true }
                d.append(c)
            }
        }
        swap(&s, &d)
        if hasDotComma {
            // 2. `([^0-9])([\.,])` → `\1 \2 `
            d.removeAll(keepingCapacity: true)
            var i = 0
            let n = s.count
            while i < n {
                let c = s[i]
                if i + 1 < n && !isDigit(c) && isDotOrComma(s[i + 1]) {
                    d.append(c); d.append(0x20); d.append(s[i + 1]); d.append(0x20)
                    i += 2
                } else {
                    d.append(c)
                    i += 1
                }
            }
            swap(&s, &d)
            // 3. `([\.,])([^0-9])` → ` \1 \2`
            d.removeAll(keepingCapacity: true)
            i = 0
            let n2 = s.count
            while i < n2 {
                let c = s[i]
                if i + 1 < n2 && isDotOrComma(c) && !isDigit(s[i + 1]) {
                    d.append(0x20); d.append(c); d.append(0x20); d.append(s[i + 1])
                    i += 2
                } else {
                    d.append(c)
                    i += 1
                }
            }
            swap(&s, &d)
        }
        if hasDash {
            // 4. `([0-9])(-)` → `\1 \2 `
            d.removeAll(keepingCapacity: true)
            var i = 0
            let n = s.count
            while i < n {
                let c = s[i]
                if i + 1 < n && isDigit(c) && s[i + 1] == 0x2D {
                    d.append(c); d.append(0x20); d.append(0x2D); d.append(0x20)
                    i += 2
                } else {
                    d.append(c)
                    i += 1
                }
            }
            swap(&s, &d)
        }
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

    static func run(_ s: inout [UInt32], scratch: inout TokenizerScratch) {
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
        // f' {line} '
        s.insert(0x20, at: 0)
        s.append(0x20)
        TokenizerRegexp.run(&s, scratch: &scratch)
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
    static func run(_ s: inout [UInt32], scratch: inout TokenizerScratch) {
        var d = scratch.tmp
        defer { scratch.tmp = d }
        var hasP = false, hasS = false
        for c in s {
            let k = UnicodeClass.of(c)
            if k == UnicodeClass.punctuation { hasP = true } else if k == UnicodeClass.symbol { hasS = true }
        }
        if hasP {
            // 1. `(\P{N})(\p{P})` → `\1 \2 `
            d.removeAll(keepingCapacity: true)
            var i = 0
            var n = s.count
            while i < n {
                let c = s[i]
                if i + 1 < n && UnicodeClass.of(c) != UnicodeClass.number
                    && UnicodeClass.of(s[i + 1]) == UnicodeClass.punctuation {
                    d.append(c); d.append(0x20); d.append(s[i + 1]); d.append(0x20)
                    i += 2
                } else {
                    d.append(c)
                    i += 1
                }
            }
            swap(&s, &d)
            // 2. `(\p{P})(\P{N})` → ` \1 \2`
            d.removeAll(keepingCapacity: true)
            i = 0
            n = s.count
            while i < n {
                let c = s[i]
                if i + 1 < n && UnicodeClass.of(c) == UnicodeClass.punctuation
                    && UnicodeClass.of(s[i + 1]) != UnicodeClass.number {
                    d.append(0x20); d.append(c); d.append(0x20); d.append(s[i + 1])
                    i += 2
                } else {
                    d.append(c)
                    i += 1
                }
            }
            swap(&s, &d)
        }
        if hasS {
            // 3. `(\p{S})` → ` \1 `
            d.removeAll(keepingCapacity: true)
            for c in s {
                if UnicodeClass.of(c) == UnicodeClass.symbol {
                    d.append(0x20); d.append(c); d.append(0x20)
                } else {
                    d.append(c)
                }
            }
            swap(&s, &d)
        }
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

    static func run(_ s: inout [UInt32], scratch: inout TokenizerScratch) {
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
        TokenizerRegexp.run(&s, scratch: &scratch)
    }
}
