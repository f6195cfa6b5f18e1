import NMTVersion
import Foundation

/// A sacreBLEU-style reproducibility signature, e.g.
/// `nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:swiftnmt-0.1.0`.
public struct MetricSignature: Sendable, Equatable, CustomStringConvertible {
    struct Field: Sendable, Equatable {
        let key: String
        let value: String
        init(_ key: String, _ value: String) {
            self.key = key
            self.value = value
        }
    }

    /// The version string our signatures carry in place of sacreBLEU's version number.
    public static let defaultVersion = "swiftnmt-\(swiftNMTVersion)"

    /// sacreBLEU's abbreviations for `--short` signatures.
    static let abbreviations: [String: String] = [
        "version": "v", "nrefs": "#", "test": "t", "lang": "l", "subset": "S", "origlang": "o",
        "bs": "bs", "ar": "ar", "seed": "rs",
        "case": "c", "eff": "e", "tok": "tok", "smooth": "s", "nc": "nc", "nw": "nw", "space": "s",
    ]

    /// The fields in output order (`version` last).
    var fields: [Field]

    init(fields: [Field]) {
        self.fields = fields
    }

    /// The value of a field, if present.
    subscript(key: String) -> String? {
        fields.first { $0.key == key }?.value
    }

    /// `key:value` pairs joined by `|`; with `short`, sacreBLEU's abbreviated keys.
    func formatted(short: Bool = false) -> String {
        fields.map { "\(short ? (Self.abbreviations[$0.key] ?? $0.key) : $0.key):\($0.value)" }
            .joined(separator: "|")
    }

    public var description: String { formatted() }

    /// Parses a `key:value|key:value` signature string (e.g. one of sacreBLEU's).
    init?(parsing text: String) {
        var fields: [Field] = []
        for part in text.split(separator: "|", omittingEmptySubsequences: false) {
            guard let colon = part.firstIndex(of: ":") else { return nil }
            fields.append(Field(String(part[..<colon]), String(part[part.index(after: colon)...])))
        }
        self.fields = fields
    }
}

/// sacreBLEU's `num_refs` field: the number of reference streams.
func referenceCountField(_ n: Int) -> MetricSignature.Field {
    .init("nrefs", String(n))
}

/// A score ready to be printed the way sacreBLEU prints it.
public struct ScoreReport: Sendable, Equatable {
    /// `BLEU`, `chrF2`, `chrF2++`, ...
    var name: String
    var score: Double
    /// BLEU's `66.1/41.0/27.6/18.9 (BP = 1.000 ratio = 1.001 hyp_len = 12103 ref_len = 12091)`.
    var verbose: String
    var signature: MetricSignature

    init(name: String, score: Double, verbose: String = "", signature: MetricSignature) {
        self.name = name
        self.score = score
        self.verbose = verbose
        self.signature = signature
    }

    /// sacreBLEU's `Score.format`: `NAME|SIGNATURE = SCORE VERBOSE`, just the score with
    /// `scoreOnly`, or an indented JSON object with `json`.
    public func formatted(width: Int = 1, scoreOnly: Bool = false, json: Bool = false, shortSignature: Bool = false) -> String {
        let sc = formatFixed(score, width)
        if scoreOnly { return sc }
        let sig = signature.formatted(short: json ? false : shortSignature)
        if json {
            var pairs: [(String, String)] = [
                ("name", jsonString(name)),
                ("score", pythonFloatRepr(Double(sc) ?? score)),
                ("signature", jsonString(sig)),
            ]
            if !verbose.isEmpty { pairs.append(("verbose_score", jsonString(verbose))) }
            for f in signature.fields { pairs.append((f.key, jsonString(f.value))) }
            return "{\n" + pairs.map { " \(jsonString($0.0)): \($0.1)" }.joined(separator: ",\n") + "\n}"
        }
        var line = sig.isEmpty ? name : "\(name)|\(sig)"
        line += " = \(sc)"
        if !verbose.isEmpty { line += " \(verbose)" }
        return line
    }

    /// sacreBLEU's `print_single_results`: several formatted scores as one output. JSON
    /// objects become a JSON list; text lines are right-aligned on their `=`.
    public static func combine(_ results: [String], json: Bool) -> String {
        if json {
            return results.count > 1 ? "[\n" + results.joined(separator: ",\n") + "\n]" : (results.first ?? "")
        }
        if results.count <= 1 { return results.first ?? "" }
        var lines: [String] = []
        var aligned: [(Int, String)] = []
        for r in results {
            let scalars = Array(r.unicodeScalars)
            if let eq = scalars.firstIndex(of: "=") {
                aligned.append((eq - 1, r))
            } else {
                lines.append(r)
            }
        }
        if let w = aligned.map({ $0.0 }).max() {
            for (len, r) in aligned {
                let scalars = Array(r.unicodeScalars)
                let left = String(String.UnicodeScalarView(scalars[..<len]))
                let right = String(String.UnicodeScalarView(scalars[len...]))
                lines.append(String(repeating: " ", count: max(0, w - len)) + left + right)
            }
        }
        return lines.joined(separator: "\n")
    }
}

/// Python's `f"{x:.{width}f}"` (both round the exact binary value half-to-even).
func formatFixed(_ x: Double, _ width: Int) -> String {
    String(format: "%.\(max(0, width))f", x)
}

/// Python's `repr(float)` for the values we print: the shortest round-tripping digits, with
/// `.0` for integral values.
func pythonFloatRepr(_ x: Double) -> String {
    if x.isNaN { return "NaN" }
    if x.isInfinite { return x > 0 ? "Infinity" : "-Infinity" }
    return x.description
}

/// A JSON string literal as Python's `json.dumps(..., ensure_ascii=False)` writes it.
func jsonString(_ s: String) -> String {
    var out = "\""
    for u in s.unicodeScalars {
        switch u {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        case "\u{08}": out += "\\b"
        case "\u{0C}": out += "\\f"
        default:
            if u.value < 0x20 {
                out += String(format: "\\u%04x", u.value)
            } else {
                out.unicodeScalars.append(u)
            }
        }
    }
    return out + "\""
}
