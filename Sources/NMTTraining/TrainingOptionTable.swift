/// One option of `mt-train`: its key (the YAML key in `--config` files and `training.yaml`, and with
/// two dashes the flag), the group it is listed under, its help, and how its value is read from and
/// written to the `TrainingOptions` field. Its default is the field's initial value.
struct TrainingOption {
    enum Group: String, CaseIterable, Sendable {
        case model = "Model"
        case optimization = "Optimization"
        case duration = "Duration and validation"
    }

    let key: String
    let group: Group
    let help: String
    /// What a valid value looks like ("an integer", "constant, plateau or inverse-sqrt").
    let expected: String
    /// Sets the field from its text; false when the text is not a valid value.
    let read: (inout TrainingOptions, String) -> Bool
    /// The field's value as the user would write it; nil when unset.
    let write: (TrainingOptions) -> String?
    /// Another option this one replaces: a layer that sets this one but not that one unsets that one.
    let replaces: WritableKeyPath<TrainingOptions, Int?>?

    init<Value: OptionValue>(_ key: String, _ group: Group, _ field: WritableKeyPath<TrainingOptions, Value>, _ help: String) {
        self.init(key, group, help, set: { $0[keyPath: field] = $1 as Value }, write: { $0[keyPath: field].description })
    }

    init<Value: OptionValue>(_ key: String, _ group: Group, _ field: WritableKeyPath<TrainingOptions, Value?>, _ help: String,
                             replaces: WritableKeyPath<TrainingOptions, Int?>? = nil) {
        self.init(key, group, help, set: { $0[keyPath: field] = $1 as Value }, write: { $0[keyPath: field]?.description },
                  replaces: replaces, unset: { $0[keyPath: field] = nil })
    }

    /// `unset`, for options that may be unset: what YAML's null (`~`, `null`, nothing) does.
    private init<Value: OptionValue>(_ key: String, _ group: Group, _ help: String, set: @escaping (inout TrainingOptions, Value) -> Void,
                                     write: @escaping (TrainingOptions) -> String?, replaces: WritableKeyPath<TrainingOptions, Int?>? = nil,
                                     unset: ((inout TrainingOptions) -> Void)? = nil) {
        self.key = key
        self.group = group
        self.help = help
        expected = Value.expected
        read = { options, text in
            if let unset, ["", "~", "null", "Null", "NULL"].contains(text) {
                unset(&options)
                return true
            }
            guard let value = Value.parse(text) else { return false }
            set(&options, value)
            return true
        }
        self.write = write
        self.replaces = replaces
    }

    /// The default, as written in YAML; nil when the default is unset.
    var defaultValue: String? { write(TrainingOptions()) }
}

/// A type an option can hold: read and written as the user writes it (`0.001`, not `1.00000004749745e-3`).
protocol OptionValue: LosslessStringConvertible {
    static var expected: String { get }
    static func parse(_ text: String) -> Self?
}

extension OptionValue {
    static func parse(_ text: String) -> Self? { Self(text) }
}

extension Int: OptionValue { static var expected: String { "an integer" } }
extension UInt64: OptionValue { static var expected: String { "a non-negative integer" } }
extension Float: OptionValue { static var expected: String { "a number" } }
extension Double: OptionValue { static var expected: String { "a number" } }
extension Bool: OptionValue {
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
extension ScheduleKind: OptionValue {
    init?(_ description: String) { self.init(rawValue: description) }
    var description: String { rawValue }
    static var expected: String { "one of " + allCases.map(\.rawValue).joined(separator: ", ") }
}

extension TrainingOptions {
    /// Every option, in the order of `--help` and of `training.yaml`. Adding an option takes an entry
    /// here and the field in `TrainingOptions`.
    static let table: [TrainingOption] = [
        .init("embed-size", .model, \.embedSize, "Embedding size E (also the deep-output size)."),
        .init("encoder-hidden-size", .model, \.encoderHiddenSize, "Hidden size of each encoder direction."),
        .init("encoder-layers", .model, \.encoderLayers, "Encoder layers (the first bidirectional)."),
        .init("decoder-hidden-size", .model, \.decoderHiddenSize, "Decoder GRU size D."),
        .init("decoder-layers", .model, \.decoderLayers, "Decoder GRU layers (>= 2: the conditional GRU)."),
        .init("attention-size", .model, \.attentionSize, "Attention size A."),
        .init("shared-embeddings", .model, \.sharedEmbeddings,
              "Share source and target embeddings (default: when the vocabulary is joint)."),
        .init("tied-output", .model, \.tiedOutput, "Tie the output projection to the target embeddings."),

        .init("batch-sentences", .optimization, \.batchSentences, "Sentence pairs per batch.", replaces: \.batchTokens),
        .init("batch-tokens", .optimization, \.batchTokens, "Target tokens (with padding) per batch; replaces batch-sentences."),
        .init("learning-rate", .optimization, \.learningRate, "Adam learning rate."),
        .init("schedule", .optimization, \.schedule, "Learning-rate schedule: constant, plateau or inverse-sqrt."),
        .init("warmup", .optimization, \.warmup, "Warm-up updates of inverse-sqrt."),
        .init("decay-factor", .optimization, \.decayFactor, "Plateau: factor applied to the rate."),
        .init("decay-patience", .optimization, \.decayPatience, "Plateau: validations without improvement before decaying."),
        .init("clip-norm", .optimization, \.clipNorm, "Clip the gradient's global norm to this (0: off)."),
        .init("label-smoothing", .optimization, \.labelSmoothing, "Label smoothing epsilon."),
        .init("dropout", .optimization, \.dropout, "Dropout rate."),
        .init("seed", .optimization, \.seed, "Random seed (data order, initialization, dropout)."),

        .init("max-updates", .duration, \.maxUpdates, "Stop after this many updates (0: no limit)."),
        .init("max-epochs", .duration, \.maxEpochs, "Stop after this many epochs (0: no limit)."),
        .init("max-minutes", .duration, \.maxMinutes, "Stop after this many minutes of training, across resumes (0: no limit)."),
        .init("valid-every", .duration, \.validEvery, "Validate and checkpoint every N updates."),
        .init("patience", .duration, \.patience, "Early stopping: validations without a better BLEU (0: never)."),
        .init("valid-beam", .duration, \.validBeam, "Beam size of validation decoding (1: greedy)."),
        .init("valid-bleu-sentences", .duration, \.validBLEUSentences, "Validation sentences decoded for BLEU (0: all)."),
        .init("log-every", .duration, \.logEvery, "Log every N updates."),
        .init("keep-last", .duration, \.keepLast, "Write the full training state (last/, for --resume) at each validation."),
        .init("keep-best", .duration, \.keepBest,
              "Write the weights to the model directory at each new best validation BLEU (false: the final weights, at the end)."),
        .init("half-precision-weights", .duration, \.halfPrecisionWeights, "Write the best model's weights as 16-bit floats."),
    ]

    /// The options a `--resume` may change: how long the run goes on, how it validates and what it keeps,
    /// and the learning rate (the schedule goes on from the new rate). The others make the run.
    public static let resumableKeys = ["max-updates", "max-epochs", "max-minutes", "patience", "valid-every", "valid-beam",
                                       "valid-bleu-sentences", "log-every", "keep-last", "keep-best", "half-precision-weights",
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
        for word in (help + (defaultValue.map { " (default: \($0))" } ?? "")).split(separator: " ") {
            if !line.isEmpty && indent.count + line.count + 1 + word.count > 79 { lines.append(indent + line); line = "" }
            line += (line.isEmpty ? "" : " ") + word
        }
        lines.append(indent + line)
        // The first help line goes beside the flag when there is room.
        if flag.count < indent.count - 1 { lines[0] = flag + lines.remove(at: 1).dropFirst(flag.count) }
        return lines.joined(separator: "\n")
    }
}
