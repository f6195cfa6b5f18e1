import Foundation
import NMTDistributed
import NMTModel
import NMTModelFiles
import NMTTensor
import Yams

/// Every option of `mt-train`. Each field's initial value is its default; `TrainingOptions.table`
/// gives each its key, help and text form. The options apply in layers, each over the ones before
/// (`resolve`), and the resolved options are saved with the model as `training.yaml`.
public struct TrainingOptions: Equatable, Sendable {
    /// Model sizes default to the reference model's, declared once in `ModelConfig`.
    private static let reference = ModelConfig.reference()

    // Model.
    var embedSize = reference.embedSize
    var encoderHiddenSize = reference.encoderHiddenSize
    var encoderLayers = reference.encoderLayers
    var decoderHiddenSize = reference.decoderHiddenSize
    var decoderLayers = reference.decoderLayers
    var attentionSize = reference.attentionSize
    /// nil: share when the vocabulary is joint.
    var sharedEmbeddings: Bool?
    var tiedOutput = reference.tiedOutput
    // Optimization.
    var batchSentences: Int? = 64
    var batchTokens: Int?
    var learningRate: Float = 1e-3
    var schedule: ScheduleKind = .plateau
    var precision: TrainingPrecision = .f32
    /// Whether the products run as `precision` asks: not bf16 on a CPU without bf16 instructions.
    public var precisionFallsBack: Bool { precision == .bf16 && !CPUFeatures.hasBF16 }
    var warmup = 4000
    var decayFactor: Float = 0.5
    var decayPatience = 2
    var clipNorm: Float = 5
    var labelSmoothing: Float = 0.1
    var dropout: Float = 0.3
    var seed: UInt64 = 1
    /// Batches whose gradients one update sums.
    var accumulate = 1
    /// The most padded tokens one forward and backward pass holds (0: whole batches); longer batches go
    /// in several passes whose gradients are summed. It bounds training's memory, not its results.
    var maxPassTokens = 1536
    /// The decay of the weights' moving average (0: none).
    var exponentialSmoothing: Float = 0
    // Duration and validation.
    var maxUpdates = 0
    var maxEpochs = 0
    var maxMinutes: Double = 0
    var validEvery = 1000
    var patience = 10
    var validBeam = 1
    var validBLEUSentences = 0
    var logEvery = 100
    var keepLast = true
    var keepBest = true
    var halfPrecisionWeights = false

    public init() {}

    /// The options of a run, in layers, each over the ones before: the defaults, then the saved
    /// `training.yaml` of the run being resumed, then the `--config` file, then the flags.
    public static func resolve(resuming run: String?, config: String?, flags: [String]) throws -> TrainingOptions {
        var options = try run.map(saved) ?? TrainingOptions()
        if let config { try options.overlay(yaml: try String(contentsOfFile: config, encoding: .utf8), path: config) }
        try options.overlay(flags: flags)
        return options
    }

    /// The same for every process of a job: the leader resolves them (it alone reads the run's files) and
    /// sends them to the others as YAML.
    public static func resolve(resuming run: String?, config: String?, flags: [String], processes: ProcessGroup) throws -> TrainingOptions {
        guard processes.size > 1 else { return try resolve(resuming: run, config: config, flags: flags) }
        let leaders = processes.isLeader ? try resolve(resuming: run, config: config, flags: flags) : nil
        let text = String(decoding: processes.broadcast(Array((leaders?.yaml() ?? "").utf8)), as: UTF8.self)
        if let leaders { return leaders }
        var options = TrainingOptions()
        try options.overlay(yaml: text, path: "the leader's options")
        return options
    }

    /// The options a training run was started or last resumed with (its `training.yaml`).
    static func saved(in run: String) throws -> TrainingOptions {
        let path = ModelDirectory(run).optionsPath
        guard let text = ModelDirectory(run).readOptions() else {
            throw TrainingError.checkpoint("--resume \(run): \(path) is missing, so this is not a training run to continue")
        }
        var options = TrainingOptions()
        try options.overlay(yaml: text, path: path)
        return options
    }

    /// Refuses, naming the first one, an option that differs from the run's saved options but that a
    /// resume may not change (`resumableKeys`): the model, the data order, the optimizer and the
    /// schedule make the run, and a resume with others would not continue it.
    func checkResumable(from saved: TrainingOptions, run: String) throws {
        for option in Self.table where !Self.resumableKeys.contains(option.key) && option.write(saved) != option.write(self) {
            throw TrainingError.checkpoint("--resume \(run): \(option.key) is \(option.write(saved) ?? "unset") in the run's training.yaml, "
                                           + "the options ask for \(option.write(self) ?? "unset"); a resume may change only "
                                           + Self.resumableKeys.joined(separator: ", ") + " (use --init-from to start another run from its weights)")
        }
    }

    /// Sets the options a YAML mapping (`key: value` lines) gives; an unknown key or a bad value is an
    /// error naming the file.
    mutating func overlay(yaml text: String, path: String) throws {
        let root: Node?
        do { root = try Yams.compose(yaml: text) } catch { throw TrainingError.badConfig("\(path): not valid YAML: \(error)") }
        guard let root else { return }
        guard let mapping = root.mapping else { throw TrainingError.badConfig("\(path): expected a mapping of option: value") }
        let settings = try mapping.compactMap { key, value -> (key: String, value: String)? in
            guard let name = key.string, let text = value.string else {
                throw TrainingError.badConfig("\(path): expected option: value, found \(key): \(value)")
            }
            return Self.retiredKeys.contains(name) ? nil : (name, text)
        }
        try apply(settings) { TrainingError.badConfig("\(path): \($0)") }
    }

    /// Sets the options given as flags, `--key value` or `--key=value`.
    public mutating func overlay(flags arguments: [String]) throws {
        var settings: [(key: String, value: String)] = []
        var rest = arguments[...]
        while let argument = rest.popFirst() {
            guard argument.hasPrefix("--") else { throw TrainingError.badFlag("unexpected argument '\(argument)'") }
            let flag = argument.dropFirst(2)
            if let equals = flag.firstIndex(of: "=") {
                settings.append((String(flag[..<equals]), String(flag[flag.index(after: equals)...])))
            } else if let value = rest.popFirst() {
                settings.append((String(flag), value))
            } else {
                throw TrainingError.badFlag("\(argument) needs a value")
            }
        }
        try apply(settings.map { ("--" + $0.key, $0.value) }) { TrainingError.badFlag($0) }
    }

    /// Sets one layer's options. `settings` name options by key, or by flag when they start with "--".
    private mutating func apply(_ settings: [(key: String, value: String)], error: (String) -> TrainingError) throws {
        var found: [(option: TrainingOption, name: String, value: String)] = []
        for (name, value) in settings {
            let key = name.hasPrefix("--") ? String(name.dropFirst(2)) : name
            guard let option = Self.table.first(where: { $0.key == key }) else { throw error("unknown option '\(name)'") }
            found.append((option, name, value))
        }
        // An option that replaces another unsets it first, so a layer that gives only the new one wins.
        for (option, _, _) in found { if let replaced = option.replaces { self[keyPath: replaced] = nil } }
        for (option, name, value) in found where !option.read(&self, value) {
            throw error("\(name): '\(value)' is not \(option.expected)")
        }
    }

    /// The options as YAML, in the table's order, each value as the user would write it; unset ones are left out.
    func yaml() -> String {
        Self.table.compactMap { option in option.write(self).map { "\(option.key): \($0)\n" } }.joined()
    }

    /// Checks across options; each option's own range is checked when it is read (`TrainingOptions.table`).
    func validate() throws {
        func check(_ ok: Bool, _ message: String) throws { if !ok { throw TrainingError.badConfig(message) } }
        try check(batchSentences != nil || batchTokens != nil, "give batch-sentences or batch-tokens")
        try check(maxUpdates > 0 || maxEpochs > 0 || maxMinutes > 0 || patience > 0,
                  "training would never stop: give max-updates, max-epochs, max-minutes or patience")
    }

    var batchSize: BatchSize { batchTokens.map { .tokens($0) } ?? .sentences(batchSentences ?? 64) }

    func modelConfig(sourceVocabSize: Int, targetVocabSize: Int, jointVocabulary: Bool) -> ModelConfig {
        ModelConfig(sourceVocabSize: sourceVocabSize, targetVocabSize: targetVocabSize, embedSize: embedSize,
                    encoderHiddenSize: encoderHiddenSize, encoderLayers: encoderLayers, decoderHiddenSize: decoderHiddenSize,
                    decoderLayers: decoderLayers, attentionSize: attentionSize,
                    sharedEmbeddings: sharedEmbeddings ?? jointVocabulary, tiedOutput: tiedOutput)
    }
}

enum TrainingError: Error, CustomStringConvertible {
    case badConfig(String)
    /// A flag that is not an option, or a value that does not fit it: a usage error.
    case badFlag(String)
    case checkpoint(String)
    case diverged(String)

    var description: String {
        switch self {
        case .badConfig(let m): return "configuration: \(m)"
        case .badFlag(let m): return m
        case .checkpoint(let m): return "checkpoint: \(m)"
        case .diverged(let m): return m
        }
    }
}

/// The precision of training's matrix products (`Seq2Seq.setTrainingPrecision`).
enum TrainingPrecision: String, Codable, Sendable, CaseIterable {
    case f32, bf16
}
