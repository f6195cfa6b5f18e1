import Foundation

/// How mt-translate writes a translation: plain text, Moses n-best lines, scores, alignments.
public struct OutputFormat: Sendable {
    var nBest = false
    var scores = false
    var alignments = false

    public init(nBest: Bool = false, scores: Bool = false, alignments: Bool = false) {
        self.nBest = nBest
        self.scores = scores
        self.alignments = alignments
    }

    /// Text that can never span lines.
    static func oneLine(_ s: String) -> String {
        s.contains(where: { $0.isNewline }) ? String(s.map { $0.isNewline ? " " : $0 }) : s
    }

    /// The lines for sentence `index` (0-based): one line, or one per hypothesis with n-best.
    public func lines(index: Int, translation: Translation) -> [String] {
        if nBest {
            return translation.hypotheses.map { h in
                var line = "\(index) ||| \(Self.oneLine(h.text)) ||| \(String(format: "%.4f", h.hypothesis.score))"
                if alignments { line += " ||| " + Self.hardAlignment(h.hypothesis.alignment) }
                return line
            }
        }
        var line = Self.oneLine(translation.text)
        if let best = translation.hypotheses.first {
            if scores { line += " ||| " + String(format: "%.4f", best.hypothesis.score) }
            if alignments { line += " ||| " + Self.hardAlignment(best.hypothesis.alignment) }
        } else if scores || alignments {
            line += (scores ? " ||| 0.0000" : "") + (alignments ? " ||| " : "")
        }
        return [line]
    }

    /// "s-t" pairs linking each target piece (EOS excluded) to the source piece it attends to most.
    public static func hardAlignment(_ alignment: [[Float]]) -> String {
        alignment.dropLast().enumerated().compactMap { t, row in
            guard let s = row.indices.max(by: { row[$0] < row[$1] }) else { return nil }
            return "\(s)-\(t)"
        }.joined(separator: " ")
    }

    /// An SVG heatmap of one hypothesis's attention: source pieces across, target pieces down.
    public static func heatmapSVG(source: [String], target: [String], alignment: [[Float]]) -> String {
        let cell = 22.0, left = 120.0, top = 110.0
        let rows = alignment.count, columns = source.count
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(left + cell * Double(columns) + 20))\" "
        s += "height=\"\(Int(top + cell * Double(rows) + 20))\" font-family=\"sans-serif\" font-size=\"11\">\n"
        s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        for (j, piece) in source.enumerated() {
            let x = left + cell * (Double(j) + 0.5)
            s += "<text transform=\"translate(\(x),\(top - 6)) rotate(-60)\">\(escapeXML(piece))</text>\n"
        }
        let targetPieces = target + ["</s>"]
        for (i, row) in alignment.enumerated() {
            let y = top + cell * Double(i)
            s += "<text x=\"\(left - 6)\" y=\"\(y + cell * 0.7)\" text-anchor=\"end\">\(escapeXML(i < targetPieces.count ? targetPieces[i] : "?"))</text>\n"
            for (j, weight) in row.prefix(columns).enumerated() {
                let shade = Int(255 * (1 - min(1, max(0, weight))))
                s += "<rect x=\"\(left + cell * Double(j))\" y=\"\(y)\" width=\"\(cell)\" height=\"\(cell)\" fill=\"rgb(\(shade),\(shade),255)\"/>\n"
            }
        }
        return s + "</svg>\n"
    }

    private static func escapeXML(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }
}
