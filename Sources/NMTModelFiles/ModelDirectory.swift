import Foundation
import NMTModel
import NMTTensor
import NMTText

/// A model directory, and the only code that knows its layout. Training writes it, resuming and
/// translation read it:
///
///   model.json, model.safetensors   the configuration and the weights `mt-translate` loads (the best ones)
///   vocabulary.json, spm*.model     the languages and the SentencePiece model(s) of each side
///   training.yaml                   the resolved training options (their text belongs to NMTTraining)
///   log.jsonl, training.svg         every logged training event, and its chart
///   last -> last-UPDATE/            the newest full training state for `--resume`: model.safetensors,
///                                   model.json and the trainer's own files (optimizer moments, state)
///
/// The model's files and the checkpoint's are replaced atomically, and `last` is switched by renaming a
/// symbolic link, so a crash at any moment leaves a complete model and a complete checkpoint.
public struct ModelDirectory: Sendable {
    let path: String

    public init(_ path: String) { self.path = path }

    static let configFile = "model.json", weightsFile = "model.safetensors", vocabularyFile = "vocabulary.json"
    static let optionsFile = "training.yaml", logFile = "log.jsonl", plotFile = "training.svg", lastLink = "last"

    public var logPath: String { path + "/" + Self.logFile }
    public var plotPath: String { path + "/" + Self.plotFile }
    package var optionsPath: String { path + "/" + Self.optionsFile }
    /// The checkpoint `last` points to.
    package var lastPath: String { path + "/" + Self.lastLink }

    package enum Error: Swift.Error, CustomStringConvertible {
        case missing(String)
        case mismatch(String)

        package var description: String {
            switch self {
            case .missing(let m), .mismatch(let m): return m
            }
        }
    }

    package func create() throws {
        do { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) } catch {
            throw FileError("create", path, (error as NSError).localizedDescription)
        }
    }

    // MARK: The model: configuration and weights

    /// Writes model.json and model.safetensors into the directory (or into `subdirectory` of it).
    package func saveModel(_ model: Seq2Seq, dtype: SafeTensors.DType = .f32, in subdirectory: String? = nil) throws {
        let directory = subdirectory.map { path + "/" + $0 } ?? path
        try ModelDirectory(directory).create()
        let tensors = model.layout.views.map { view in
            SafeTensors.Tensor(name: view.name, shape: view.shape,
                               values: Array(UnsafeBufferPointer(start: model.parameters[view], count: view.count)))
        }
        for t in tensors where t.values.contains(where: { !$0.isFinite }) {
            throw Error.mismatch("refusing to save: \(t.name) holds NaN or infinite values")
        }
        try AtomicFile.write(try SafeTensors.encode(tensors, dtype: dtype, metadata: ["format": "swiftnmt", "version": "1"]),
                             to: directory + "/" + Self.weightsFile)
        try AtomicFile.write(try Self.prettyJSON(model.config), to: directory + "/" + Self.configFile)
    }

    package func loadConfig() throws -> ModelConfig {
        let file = path + "/" + Self.configFile
        guard let data = FileManager.default.contents(atPath: file) else {
            throw Error.missing("\(path) is not a model directory: \(Self.configFile) is missing")
        }
        do { return try JSONDecoder().decode(ModelConfig.self, from: data) } catch {
            throw Error.mismatch("\(file) is not a valid model configuration: \(error)")
        }
    }

    /// Loads the model, checking that every tensor the configuration needs is present with its shape
    /// and that nothing else is there; names the first difference.
    package func loadModel() throws -> Seq2Seq {
        let model = try Seq2Seq(config: try loadConfig())
        try loadWeights(into: model)
        return model
    }

    /// Reads the directory's weights into `model`.
    package func loadWeights(into model: Seq2Seq) throws { try loadWeights(into: model, from: nil) }

    /// The configuration of the model in the checkpoint `last`.
    public func loadCheckpointConfig() throws -> ModelConfig {
        guard holdsTrainingRun else {
            throw Error.missing("\(path) holds no checkpoint to continue from: \(lastPath) is missing "
                                + "(the run wrote none: keep-last false, or it stopped before its first validation)")
        }
        return try ModelDirectory(lastPath).loadConfig()
    }

    /// Reads the weights of the checkpoint `last` into `model`.
    package func loadCheckpointWeights(into model: Seq2Seq) throws { try loadWeights(into: model, from: Self.lastLink) }

    private func loadWeights(into model: Seq2Seq, from subdirectory: String?) throws {
        let file = (subdirectory.map { path + "/" + $0 } ?? path) + "/" + Self.weightsFile
        guard FileManager.default.fileExists(atPath: file) else { throw Error.missing("\(file) is missing") }
        let (tensors, _) = try SafeTensors.read(path: file)
        for view in model.layout.views {
            guard let t = tensors[view.name] else { throw Error.mismatch("\(file) has no tensor \(view.name) (shape \(view.shape))") }
            guard t.shape == view.shape else {
                throw Error.mismatch("\(view.name) has shape \(t.shape) in \(file) but the configuration needs \(view.shape)")
            }
            guard t.values.allSatisfy(\.isFinite) else { throw Error.mismatch("\(view.name) in \(file) holds NaN or infinite values") }
            t.values.withUnsafeBufferPointer { model.parameters[view].update(from: $0.baseAddress!, count: view.count) }
        }
        let expected = Set(model.layout.views.map(\.name))
        if let extra = tensors.keys.sorted().first(where: { !expected.contains($0) }) {
            throw Error.mismatch("\(file) has a tensor \(extra) that the configuration does not use")
        }
    }

    // MARK: The vocabulary

    /// Copies the SentencePiece model file(s) into the directory and writes vocabulary.json.
    package func installVocabulary(sourceLang: String, targetLang: String, sourceModel: String, targetModel: String) throws {
        let fm = FileManager.default
        for file in Set([sourceModel, targetModel]) {
            let destination = path + "/" + (file as NSString).lastPathComponent
            try? fm.removeItem(atPath: destination)
            do { try fm.copyItem(atPath: file, toPath: destination) } catch {
                throw FileError("copy", "\(file) into \(path)", (error as NSError).localizedDescription)
            }
        }
        let files = VocabularyFiles(sourceLang: sourceLang, targetLang: targetLang, sourceModel: (sourceModel as NSString).lastPathComponent,
                                    targetModel: (targetModel as NSString).lastPathComponent)
        try AtomicFile.write(try Self.prettyJSON(files), to: path + "/" + Self.vocabularyFile)
    }

    /// The source and target SentencePiece models (one object when the vocabulary is joint).
    package func loadVocabulary() throws -> (files: VocabularyFiles, source: SentencePiece, target: SentencePiece) {
        let file = path + "/" + Self.vocabularyFile
        guard let data = FileManager.default.contents(atPath: file) else {
            throw Error.missing("\(path) is not a model directory: \(Self.vocabularyFile) is missing")
        }
        let files: VocabularyFiles
        do { files = try JSONDecoder().decode(VocabularyFiles.self, from: data) } catch {
            throw Error.mismatch("\(file) is not valid: \(error)")
        }
        let source = try SentencePiece(modelPath: path + "/" + files.sourceModel)
        let target = files.targetModel == files.sourceModel ? source : try SentencePiece(modelPath: path + "/" + files.targetModel)
        return (files, source, target)
    }

    /// Checks that a directory exists and holds a model, before anything is loaded from it.
    package func checkExists() throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw Error.missing("model directory \(path) does not exist")
        }
    }

    // MARK: The training options' text

    package func writeOptions(_ text: String) throws { try AtomicFile.write(Data(text.utf8), to: optionsPath) }

    /// training.yaml, or nil when there is none.
    package func readOptions() -> String? { try? String(contentsOfFile: optionsPath, encoding: .utf8) }

    // MARK: Checkpoints

    /// Whether the directory holds a training run that `--resume` could continue.
    package var holdsTrainingRun: Bool { FileManager.default.fileExists(atPath: lastPath) }

    /// Starting over: removes the old run's checkpoints and log.
    package func removeTrainingRun() throws {
        let fm = FileManager.default
        for item in (try? fm.contentsOfDirectory(atPath: path)) ?? []
        where item == Self.lastLink || item.hasPrefix(Self.lastLink + "-") || item == Self.logFile {
            try fm.removeItem(atPath: path + "/" + item)
        }
    }

    /// Writes a checkpoint into a new directory `last-UPDATE` (the model's weights and configuration plus
    /// the trainer's `files`), then points the symbolic link `last` at it with an atomic rename and removes
    /// the previous one. Weights and the trainer's files always change together.
    package func saveCheckpoint(update: Int, model: Seq2Seq, files: [(name: String, data: Data)]) throws {
        let fm = FileManager.default
        let previous = try? fm.destinationOfSymbolicLink(atPath: lastPath)
        // A run resumed and stopped at once checkpoints the same update again: never overwrite the
        // checkpoint `last` points to, or a crash in between would leave no checkpoint at all.
        var name = Self.lastLink + "-\(update)"
        if name == previous { name += "-again" }
        let target = path + "/" + name
        try? fm.removeItem(atPath: target)
        try saveModel(model, in: name)
        for file in files { try AtomicFile.write(file.data, to: target + "/" + file.name) }
        let temporaryLink = path + "/.\(Self.lastLink).tmp-\(getpid())"
        try? fm.removeItem(atPath: temporaryLink)
        guard symlink(name, temporaryLink) == 0, rename(temporaryLink, lastPath) == 0 else {
            throw FileError("switch", "\(lastPath) to \(name)", FileError.systemReason())
        }
        let dirfd = open(path, O_RDONLY)
        if dirfd >= 0 { fsync(dirfd); close(dirfd) }
        if let previous, previous != name { try? fm.removeItem(atPath: path + "/" + previous) }
    }

    /// One of the trainer's files in the checkpoint `last` points to.
    package func checkpointFile(_ name: String) throws -> Data {
        let file = lastPath + "/" + name
        guard let data = FileManager.default.contents(atPath: file) else { throw Error.missing("\(file) is missing") }
        return data
    }

    /// JSON as every file of a model directory is written: indented, keys sorted (so files diff well).
    package static func prettyJSON<T: Encodable>(_ value: T) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(value)
    }
}

/// Which SentencePiece models a model directory uses (`vocabulary.json`).
package struct VocabularyFiles: Codable, Equatable, Sendable {
    var sourceLang: String
    var targetLang: String
    /// File names inside the model directory (the same file when the vocabulary is joint).
    var sourceModel: String
    var targetModel: String

    init(sourceLang: String, targetLang: String, sourceModel: String, targetModel: String) {
        self.sourceLang = sourceLang
        self.targetLang = targetLang
        self.sourceModel = sourceModel
        self.targetModel = targetModel
    }
}
