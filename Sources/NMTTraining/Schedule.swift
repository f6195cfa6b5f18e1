/// Learning-rate schedules. The schedule's state is Codable so that `--resume` restores it.
enum ScheduleKind: String, Codable, Sendable, CaseIterable {
    /// The base rate throughout.
    case constant
    /// Multiply the rate by `factor` after `patience` validations without improvement.
    case plateau
    /// Linear warm-up over `warmup` updates, then base · √(warmup / update).
    case inverseSqrt = "inverse-sqrt"
}

struct LearningRateSchedule: Codable, Equatable, Sendable {
    var kind: ScheduleKind
    var baseRate: Float
    var warmup: Int
    var factor: Float
    var patience: Int
    var minimumRate: Float
    // Plateau state.
    private(set) var plateauRate: Float
    private(set) var bestScore: Double?
    private(set) var badValidations = 0

    init(kind: ScheduleKind, baseRate: Float, warmup: Int = 4000, factor: Float = 0.5, patience: Int = 2,
                minimumRate: Float = 1e-6) {
        self.kind = kind
        self.baseRate = baseRate
        self.warmup = warmup
        self.factor = factor
        self.patience = patience
        self.minimumRate = minimumRate
        plateauRate = baseRate
    }

    /// The rate for update number `update` (1-based).
    func rate(update: Int) -> Float {
        switch kind {
        case .constant: return baseRate
        case .plateau: return plateauRate
        case .inverseSqrt:
            let u = Float(max(update, 1)), w = Float(max(warmup, 1))
            return u < w ? baseRate * u / w : baseRate * (w / u).squareRoot()
        }
    }

    /// Goes on from a new base rate (a resume that changes the learning rate): the rate restarts at it;
    /// the plateau's record of validations stays.
    mutating func restart(baseRate rate: Float) {
        baseRate = rate
        plateauRate = rate
    }

    /// Tells the schedule a validation score (higher is better).
    mutating func validated(score: Double) {
        guard kind == .plateau else { return }
        if let best = bestScore, score <= best {
            badValidations += 1
            if badValidations >= patience {
                plateauRate = max(minimumRate, plateauRate * factor)
                badValidations = 0
            }
        } else {
            bestScore = score
            badValidations = 0
        }
    }
}
