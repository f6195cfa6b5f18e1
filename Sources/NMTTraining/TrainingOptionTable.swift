import NMTModel

/// One option of `mt-train`: its key (the YAML key in `--config` files and `training.yaml`, and with
/// two dashes the flag), the group it is listed under, its help, the values it allows, and how its
/// value is read from and written to the `TrainingOptions` field. Its default is the field's initial value.
struct TrainingOption {
    enum Group: String, CaseIterable, Sendable {
        case model = "Model"
        case optimization = "Optimization"
        case duration = "Duration and validation"
    }

    let key: String
    let group: Group
    let help: String
    /// What a valid value looks like ("an integer from 1 to 8", "one of constant, plateau, inverse-sqrt").
    let expected: String
    /// The values allowed beyond what the type holds ("from 1 to 8"); nil when every value is.
    let allowed: String?
    /// Sets the field from its text; false when the text is not a valid value or not an allowed one.
    let read: (inout TrainingOptions, String) -> Bool
    /// The field's value as the user would write it; nil when unset.
    let write: (TrainingOptions) -> String?
    /// Another option this one replaces: a layer that sets this one but not that one unsets that one.
    let replaces: WritableKeyPath<TrainingOptions, Int?>?

    /// An option of a number type: `allowed` bounds it.
    init<Value: OptionValue & Comparable>(_ key: String, _ group: Group, _ field: WritableKeyPath<TrainingOptions, Value>,
                                          _ allowed: Allowed<Value>, _ help: String) {
        self.init(key, group, help, allowed: allowed, set: { $0[keyPath: field] = $1 as Value },
                  write: { $0[keyPath: field].description })
    }

    init<Value: OptionValue & Comparable>(_ key: String, _ group: Group, _ field: WritableKeyPath<TrainingOptions, Value?>,
                                          _ allowed: Allowed<Value>, _ help: String, replaces: WritableKeyPath<TrainingOptions, Int?>? = nil) {
        self.init(key, group, help, allowed: allowed, set: { $0[keyPath: field] = $1 as Value },
                  write: { $0[keyPath: field]?.description }, replaces: replaces, unset: { $0[keyPath: field] = nil })
    }

    /// An option whose type holds only valid values (true or false, a schedule, a seed).
    init<Value: UnboundedOptionValue>(_ key: String, _ group: Group, _ field: WritableKeyPath<TrainingOptions, Value>, _ help: String) {
        self.init(key, group, help, allowed: Allowed<Value>.any, set: { $0[keyPath: field] = $1 as Value },
                  write: { $0[keyPath: field].description })
    }

    init<Value: UnboundedOptionValue>(_ key: String, _ group: Group, _ field: WritableKeyPath<TrainingOptions, Value?>, _ help: String) {
        self.init(key, group, help, allowed: Allowed<Value>.any, set: { $0[keyPath: field] = $1 as Value },
                  write: { $0[keyPath: field]?.description }, unset: { $0[keyPath: field] = nil })
    }

    /// `unset`, for options that may be unset: what YAML's null (`~`, `null`, nothing) does.
    private init<Value: OptionValue>(_ key: String, _ group: Group, _ help: String, allowed: Allowed<Value>,
                                     set: @escaping (inout TrainingOptions, Value) -> Void, write: @escaping (TrainingOptions) -> String?,
                                     replaces: WritableKeyPath<TrainingOptions, Int?>? = nil, unset: ((inout TrainingOptions) -> Void)? = nil) {
        self.key = key
        self.group = group
        self.help = help
        expected = Value.expected + (allowed.description.map { " " + $0 } ?? "")
        self.allowed = allowed.description
        read = { options, text in
            if let unset, ["", "~", "null", "Null", "NULL"].contains(text) {
                unset(&options)
                return true
            }
            guard let value = Value.parse(text), allowed.contains(value) else { return false }
            set(&options, value)
            return true
        }
        self.write = write
        self.replaces = replaces
    }

    /// The default, as written in YAML; nil when the default is unset.
    var defaultValue: String? { write(TrainingOptions()) }
}

/// The values an option allows, checked whenever a flag or a YAML value is read, so that no value
/// can crash or hang a run (a zero that divides, a NaN that cannot be saved, a size no machine holds).
/// The bounds are finite, so NaN and infinity are never allowed.
struct Allowed<Value> {
    let contains: (Value) -> Bool
    /// As `--help` and errors say it: "from 1 to 8"; nil when every value is allowed.
    let description: String?

    static var any: Allowed { Allowed(contains: { _ in true }, description: nil) }
}

extension Allowed where Value: Comparable {
    /// lower ≤ value ≤ upper.
    static func range(_ bounds: ClosedRange<Value>) -> Allowed {
        Allowed(contains: bounds.contains, description: "from \(bounds.lowerBound) to \(bounds.upperBound)")
    }

    /// lower ≤ value < upper (a probability that must leave something: dropout, label smoothing).
    static func from(_ lower: Value, below upper: Value) -> Allowed {
        Allowed(contains: { lower <= $0 && $0 < upper }, description: "from \(lower) to below \(upper)")
    }

    /// lower < value ≤ upper (a rate or factor that must not be zero).
    static func above(_ lower: Value, upTo upper: Value) -> Allowed {
        Allowed(contains: { lower < $0 && $0 <= upper }, description: "above \(lower), up to \(upper)")
    }
}

/// A type an option can hold: read and written as the user writes it (`0.001`, not `1.00000004749745e-3`).
protocol OptionValue: LosslessStringConvertible {
    static var expected: String { get }
    static func parse(_ text: String) -> Self?
}

extension OptionValue {
    static func parse(_ text: String) -> Self? { Self(text) }
}

/// A type whose every value is a valid option value, so its options need no bound.
protocol UnboundedOptionValue: OptionValue {}

extension Int: OptionValue { static var expected: String { "an integer" } }
extension UInt64: UnboundedOptionValue { static var expected: String { "a non-negative integer" } }
extension Float: OptionValue { static var expected: String { "a number" } }
extension Double: OptionValue { static var expected: String { "a number" } }
extension Bool: UnboundedOptionValue {
    static var expected: String { "true or false" }
    /// YAML's spellings too (`True`, `yes`, `off`), as YAML files written by hand use them.
    static func parse(_ text: String) -> Bool? {
        switch text.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default: return nil
        }
    }
}
extension TrainingPrecision: UnboundedOptionValue {
    init?(_ description: String) { self.init(rawValue: description) }
    var description: String { rawValue }
    static var expected: String { "one of " + allCases.map(\.rawValue).joined(separator: ", ") }
}
extension ScheduleKind: UnboundedOptionValue {
    init?(_ description: String) { self.init(rawValue: description) }
    var description: String { rawValue }
    static var expected: String { "one of " + allCases.map(\.rawValue).joined(separator: ", ") }
}

extension TrainingOptions {
    /// The largest layer size and layer count (the reference model has 256 and 512, 1 and 2 layers): those
    /// of any model, which model.json files are checked against too.
    static let maxLayerSize = ModelConfig.maxLayerSize, maxLayers = ModelConfig.maxLayers
    /// The largest batches: a batch's logits take target tokens × vocabulary floats, 640 MB for
    /// 20,000 tokens over 8,000 pieces.
    static let maxBatchSentences = 1000, maxBatchTokens = 20_000
    /// Updates that no run reaches (a billion), the bound of every count of updates.
    static let maxUpdates = 1_000_000_000

    /// Every option, in the order of `--help` and of `training.yaml`, with the values it allows.
    /// Adding an option takes an entry here and the field in `TrainingOptions`.
    static let table: [TrainingOption] = [
        .init("embed-size", .model, \.embedSize, .range(1...maxLayerSize), "Embedding size E (also the deep-output size)."),
        .init("encoder-hidden-size", .model, \.encoderHiddenSize, .range(1...maxLayerSize), "Hidden size of each encoder direction."),
        .init("encoder-layers", .model, \.encoderLayers, .range(1...maxLayers), "Encoder layers (the first bidirectional)."),
        .init("decoder-hidden-size", .model, \.decoderHiddenSize, .range(1...maxLayerSize), "Decoder GRU size D."),
        .init("decoder-layers", .model, \.decoderLayers, .range(2...maxLayers), "Decoder GRU layers (>= 2: the conditional GRU)."),
        .init("attention-size", .model, \.attentionSize, .range(1...maxLayerSize), "Attention size A."),
        .init("shared-embeddings", .model, \.sharedEmbeddings,
              "Share source and target embeddings (default: when the vocabulary is joint)."),
        .init("tied-output", .model, \.tiedOutput, "Tie the output projection to the target embeddings."),

        .init("batch-sentences", .optimization, \.batchSentences, .range(1...maxBatchSentences), "Sentence pairs per batch.",
              replaces: \.batchTokens),
        .init("batch-tokens", .optimization, \.batchTokens, .range(1...maxBatchTokens),
              "Target tokens (with padding) per batch; replaces batch-sentences."),
        .init("learning-rate", .optimization, \.learningRate, .above(0, upTo: 1), "Adam learning rate."),
        .init("schedule", .optimization, \.schedule, "Learning-rate schedule: constant, plateau or inverse-sqrt."),
        .init("warmup", .optimization, \.warmup, .range(0...maxUpdates), "Warm-up updates of inverse-sqrt."),
        .init("decay-factor", .optimization, \.decayFactor, .above(0, upTo: 1), "Plateau: factor applied to the rate."),
        .init("decay-patience", .optimization, \.decayPatience, .range(0...1000),
              "Plateau: validations without improvement before decaying."),
        .init("clip-norm", .optimization, \.clipNorm, .range(0...1e6), "Clip the gradient's global norm to this (0: off)."),
        .init("label-smoothing", .optimization, \.labelSmoothing, .from(0, below: 1), "Label smoothing epsilon."),
        .init("dropout", .optimization, \.dropout, .from(0, below: 1), "Dropout rate."),
        .init("seed", .optimization, \.seed, "Random seed (data order, initialization, dropout)."),
        .init("precision", .optimization, \.precision,
              "Matrix products: f32 (OpenBLAS) or bf16 (oneDNN, mixed precision: the weights, optimizer, loss and sums stay f32). bf16 needs AVX-512 with bf16; without it, training runs in f32 and says so."),
        .init("accumulate", .optimization, \.accumulate, .range(1...1000),
              "Batches per update: each update sums the gradients of this many batches (Marian's --optimizer-delay, fairseq's --update-freq)."),
        .init("max-pass-tokens", .optimization, \.maxPassTokens, .range(0...maxBatchTokens),
              "Bounds memory: a batch that pads to more source or target tokens than this (sentences x longest) is computed in several passes whose gradients are summed, so the update is the same up to rounding. 0: whole batches."),
        .init("exponential-smoothing", .optimization, \.exponentialSmoothing, .from(0, below: 1),
              "Keep a moving average of the weights, w <- d*w + (1-d)*weights after each update, for validation and the saved model (last/ keeps the raw weights). 0: off; 0.999 averages over about the last 1,000 updates."),

        .init("max-updates", .duration, \.maxUpdates, .range(0...maxUpdates), "Stop after this many updates (0: no limit)."),
        .init("max-epochs", .duration, \.maxEpochs, .range(0...1_000_000), "Stop after this many epochs (0: no limit)."),
        .init("max-minutes", .duration, \.maxMinutes, .range(0...525_600),
              "Stop after this many minutes of training, across resumes (0: no limit)."),
        .init("valid-every", .duration, \.validEvery, .range(1...maxUpdates), "Validate and checkpoint every N updates."),
        .init("patience", .duration, \.patience, .range(0...1000), "Early stopping: validations without a better BLEU (0: never)."),
        .init("valid-beam", .duration, \.validBeam, .range(1...100), "Beam size of validation decoding (1: greedy)."),
        .init("valid-bleu-sentences", .duration, \.validBLEUSentences, .range(0...10_000_000),
              "Validation sentences decoded for BLEU (0: all)."),
        .init("log-every", .duration, \.logEvery, .range(1...maxUpdates), "Log every N updates."),
        .init("keep-last", .duration, \.keepLast, "Write the full training state (last/, for --resume) at each validation."),
        .init("keep-best", .duration, \.keepBest,
              "Write the weights to the model directory at each new best validation BLEU (false: the final weights, at the end)."),
        .init("half-precision-weights", .duration, \.halfPrecisionWeights, "Write the best model's weights as 16-bit floats."),
    ]

    /// The options a `--resume` may change: how long the run goes on, how it validates and what it keeps,
    /// and the learning rate (the schedule goes on from the new rate). The others make the run.
    public static let resumableKeys = ["max-updates", "max-epochs", "max-minutes", "patience", "valid-every", "valid-beam",
                                       "valid-bleu-sentences", "log-every", "keep-last", "keep-best", "half-precision-weights", "max-pass-tokens",
                                       "learning-rate"]

    /// Keys that older versions wrote to `training.yaml` and that no longer mean anything; reading skips
    /// them. `threads` became `--threads`, which does not change the results and so is not saved.
    static let retiredKeys: Set<String> = ["threads"]

    /// The table for `mt-train --help`, by group.
    public static func help() -> String {
        TrainingOption.Group.allCases.map { group in
            group.rawValue + ":\n" + table.filter { $0.group == group }.map(\.helpEntry).joined(separator: "\n")
        }.joined(separator: "\n\n")
    }
}

extension TrainingOption {
    /// `  --key <key>   help (default: value)`, laid out as ArgumentParser lays out its own options:
    /// the help at column 34, lines shorter than 80 columns (ArgumentParser rewraps longer ones).
    var helpEntry: String {
        let indent = String(repeating: " ", count: 34), flag = "  --\(key) <\(key)>"
        var lines = [flag], line = ""
        let notes = [allowed, defaultValue.map { "default: \($0)" }].compactMap { $0 }
        let text = help + (notes.isEmpty ? "" : " (\(notes.joined(separator: "; ")))")
        for word in text.split(separator: " ") {
            if !line.isEmpty && indent.count + line.count + 1 + word.count > 79 { lines.append(indent + line); line = "" }
            line += (line.isEmpty ? "" : " ") + word
        }
        lines.append(indent + line)
        // The first help line goes beside the flag when there is room.
        if flag.count < indent.count - 1 { lines[0] = flag + lines.remove(at: 1).dropFirst(flag.count) }
        return lines.joined(separator: "\n")
    }
}
