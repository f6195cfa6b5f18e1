import Foundation
import NMTTensor

/// A small SVG chart of training loss and validation BLEU over updates, written at the end of
/// training (`training.svg` in the model directory). No plotting library: two polylines and axes.
public enum TrainingPlot {
    static func svg(trainLoss: [(Int, Double)], validBLEU: [(Int, Double)], title: String) -> String {
        let width = 720.0, height = 360.0, left = 60.0, right = 60.0, top = 40.0, bottom = 40.0
        let plotW = width - left - right, plotH = height - top - bottom
        let maxUpdate = Double(max(1, (trainLoss.map(\.0) + validBLEU.map(\.0)).max() ?? 1))
        let maxLoss = max(1e-9, trainLoss.map(\.1).max() ?? 1), maxBLEU = max(1, validBLEU.map(\.1).max() ?? 1)
        func x(_ u: Int) -> Double { left + plotW * Double(u) / maxUpdate }
        func polyline(_ points: [(Int, Double)], scale: Double, color: String) -> String {
            let coordinates = points.map { String(format: "%.1f,%.1f", x($0.0), top + plotH * (1 - $0.1 / scale)) }
            return "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"1.5\" points=\"\(coordinates.joined(separator: " "))\"/>"
        }
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" font-family=\"sans-serif\" font-size=\"12\">\n"
        s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        s += "<text x=\"\(Int(width / 2))\" y=\"20\" text-anchor=\"middle\">\(escape(title))</text>\n"
        s += "<rect x=\"\(left)\" y=\"\(top)\" width=\"\(plotW)\" height=\"\(plotH)\" fill=\"none\" stroke=\"#999\"/>\n"
        for i in 0...4 {
            let f = Double(i) / 4, y = top + plotH * (1 - f)
            s += String(format: "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"end\" fill=\"#1f77b4\">%.2f</text>\n", left - 5, y + 4, maxLoss * f)
            s += String(format: "<text x=\"%.0f\" y=\"%.0f\" fill=\"#d62728\">%.1f</text>\n", left + plotW + 5, y + 4, maxBLEU * f)
            s += String(format: "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">%d</text>\n", left + plotW * f, top + plotH + 16, Int(maxUpdate * f))
        }
        s += "<text x=\"\(Int(left + plotW / 2))\" y=\"\(Int(height - 6))\" text-anchor=\"middle\">updates</text>\n"
        s += "<text x=\"10\" y=\"\(Int(top - 8))\" fill=\"#1f77b4\">training loss</text>\n"
        s += "<text x=\"\(Int(width - 10))\" y=\"\(Int(top - 8))\" text-anchor=\"end\" fill=\"#d62728\">validation BLEU</text>\n"
        if !trainLoss.isEmpty { s += polyline(trainLoss, scale: maxLoss, color: "#1f77b4") + "\n" }
        if !validBLEU.isEmpty { s += polyline(validBLEU, scale: maxBLEU, color: "#d62728") + "\n" }
        return s + "</svg>\n"
    }

    /// Reads `log.jsonl` and writes the chart beside it.
    public static func write(logPath: String, to path: String, title: String) throws {
        guard let text = try? String(contentsOfFile: logPath, encoding: .utf8) else { return }
        var loss: [(Int, Double)] = [], bleu: [(Int, Double)] = []
        let decoder = JSONDecoder()
        for line in text.split(separator: "\n") {
            guard let event = try? decoder.decode(TrainingEvent.self, from: Data(line.utf8)) else { continue }
            if event.kind == .train, let l = event.loss { loss.append((event.update, l)) }
            if event.kind == .valid, let b = event.bleu { bleu.append((event.update, b)) }
        }
        try AtomicFile.write(Data(svg(trainLoss: loss, validBLEU: bleu, title: title).utf8), to: path)
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }
}
