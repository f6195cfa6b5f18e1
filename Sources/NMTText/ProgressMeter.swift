import Foundation

/// Figures for the progress of a long step (done so far, rate, time left), at most one report per
/// `interval` seconds, so that callers can ask after every chunk of work.
struct ProgressMeter {
    let interval: Double
    private let start = Date()
    private var lastReport: Date

    init(interval: Double) {
        self.interval = interval
        lastReport = start
    }

    /// "1,200,000 of 4,350,000 pairs (28%), 160,000 pairs/s, 0:20 left", or nil when the last report is
    /// too recent. With no total, `fraction` (e.g. of the bytes read) gives the share done, when known.
    mutating func report(done: Int, of total: Int? = nil, fraction: Double? = nil, unit: String) -> String? {
        let now = Date()
        guard done > 0, now.timeIntervalSince(lastReport) >= interval else { return nil }
        lastReport = now
        let elapsed = now.timeIntervalSince(start)
        let share = total.map { $0 > 0 ? Double(done) / Double($0) : 1 } ?? fraction
        var text = Self.grouped(done) + (total.map { " of " + Self.grouped($0) } ?? "") + " " + unit
        if let share { text += String(format: " (%.0f%%)", 100 * share) }
        text += ", " + Self.grouped(Int(Double(done) / max(elapsed, 1e-9))) + " \(unit)/s"
        if let share, share > 0 {
            let left = Int((elapsed * (1 - share) / share).rounded())
            text += String(format: ", %d:%02d left", left / 60, left % 60)
        }
        return text
    }

    /// 4350000 -> "4,350,000".
    static func grouped(_ n: Int) -> String {
        let digits = String(n.magnitude)
        var out = ""
        for (i, c) in digits.enumerated() {
            if i > 0 && (digits.count - i) % 3 == 0 { out.append(",") }
            out.append(c)
        }
        return (n < 0 ? "-" : "") + out
    }
}
