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
///   .lock                           held by the one run that writes the directory (with its PID)
///
/// The model's files and the checkpoint's are replaced atomically, and `last` is switched by renaming a
/// symbolic link, so a crash at any moment leaves a complete model and a complete checkpoint. Readers
/// need no lock; writers take `lockForWriting()` first. `last` is only followed to a `last-N` directory
/// beside it, so nothing outside the directory is ever read as a checkpoint or deleted.
public struct ModelDirectory: Sendable {
    let path: String

    public init(_ path: String) { self.path = path }

    static let configFile = "model.json", weightsFile = "model.safetensors", vocabularyFile = "vocabulary.json"
    static let optionsFile = "training.yaml", logFile = "log.jsonl", plotFile = "training.svg", lastLink = "last"
    static let lockFile = ".lock"

    public var logPath: String { path + "/" + Self.logFile }
    public var plotPath: String { path + "/" + Self.plotFile }
    package var optionsPath: String { path + "/" + Self.optionsFile }
    /// The checkpoint `last` points to.
    package var lastPath: String { path + "/" + Self.lastLink }

    package enum Error: Swift.Error, CustomStringConvertible {
        case missing(String)
        case mismatch(String)
        /// Another process holds the directory's lock.
        case inUse(String)
        /// `last` leads outside the directory.
        case unsafeLink(String)

        package var description: String {
            switch self {
            case .missing(let m), .mismatch(let m), .inUse(let m), .unsafeLink(let m): return m
            }
        }
    }

    package func create() throws {
        do { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) } catch {
            throw FileError("create", path, (error as NSError).localizedDescription)
        }
    }

    // MARK: One writer at a time

    /// The directory's lock, held by one training run from its checks to its exit. `flock` releases it
    /// when the descriptor is closed: on deinit, or by the system when the process ends however it ends.
    package final class Lock {
        private let descriptor: Int32
        fileprivate init(descriptor: Int32) { self.descriptor = descriptor }
        deinit { close(descriptor) }
    }

    /// Creates the directory when missing and takes its lock, or fails at once naming the process that
    /// holds it. The lock file stays (removing it would let two runs lock two different files).
    package func lockForWriting() throws -> Lock {
        try create()
        let file = path + "/" + Self.lockFile
        let descriptor = open(file, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw FileError("open", file, FileError.systemReason()) }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            let busy = errno == EWOULDBLOCK, reason = FileError.systemReason()
            let holder = Self.pid(in: descriptor).map { "PID \($0)" } ?? "a process that has not written its PID yet"
            close(descriptor)
            guard busy else { throw FileError("lock", file, reason) }
            throw Error.inUse("\(path) is in use by another training run (\(holder) holds \(file)); wait for it to end")
        }
        // Our PID, for the message of the next writer that finds the directory in use.
        let pid = Data("\(getpid())\n".utf8)
        let written = pid.withUnsafeBytes { ftruncate(descriptor, 0) == 0 ? pwrite(descriptor, $0.baseAddress!, $0.count, 0) : -1 }
        guard written == pid.count else {
            let reason = FileError.systemReason()
            close(descriptor)
            throw FileError("write", file, reason)
        }
        return Lock(descriptor: descriptor)
    }

    /// The PID a lock file holds.
    private static func pid(in descriptor: Int32) -> Int32? {
        var bytes = [UInt8](repeating: 0, count: 32)
        let count = pread(descriptor, &bytes, bytes.count, 0)
        guard count > 0 else { return nil }
        return Int32(String(decoding: bytes[..<count], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// Whether the directory holds a model that a new run would replace: its weights, its
    /// configuration, or a training run.
    package var holdsModel: Bool {
        let fm = FileManager.default
        return fm.fileExists(atPath: path + "/" + Self.configFile) || fm.fileExists(atPath: path + "/" + Self.weightsFile) || holdsTrainingRun
    }

    // MARK: The model: configuration and weights

    /// Writes model.json and model.safetensors into the directory (or into `subdirectory` of it).
    package func saveModel(_ model: Seq2Seq, dtype: SafeTensors.DType = .f32, in subdirectory: String? = nil) throws {
        let directory = subdirectory.map { path + "/" + $0 } ?? path
        try ModelDirectory(directory).create()
        let tensors = model.layout.views.map { view in
            SafeTensors.Source(name: view.name, shape: view.shape, values: UnsafeBufferPointer(start: model.parameters[view], count: view.count))
        }
        for view in model.layout.views where UnsafeBufferPointer(start: model.parameters[view], count: view.count).contains(where: { !$0.isFinite }) {
            throw Error.mismatch("refusing to save: \(view.name) holds NaN or infinite values")
        }
        try SafeTensors.write(tensors, dtype: dtype, metadata: ["format": "swiftnmt", "version": "1"], to: directory + "/" + Self.weightsFile)
        try AtomicFile.write(try Self.prettyJSON(model.config), to: directory + "/" + Self.configFile)
    }

    package func loadConfig() throws -> ModelConfig {
        let file = path + "/" + Self.configFile
        guard let data = FileManager.default.contents(atPath: file) else {
            throw Error.missing("\(path) is not a model directory: \(Self.configFile) is missing")
        }
        let config = try JSONFile.decode(ModelConfig.self, from: data, path: file)
        do { try config.validate() } catch { throw Error.mismatch("\(file): \(error)") }
        return config
    }

    /// Loads the model, checking that every tensor the configuration needs is present with its shape
    /// and that nothing else is there; names the first difference. The configuration is checked against
    /// the weights file's header before the model is allocated, so a model.json that claims more than
    /// its weights hold fails here rather than in an allocation of its claim.
    package func loadModel() throws -> Seq2Seq {
        let config = try loadConfig()
        let file = path + "/" + Self.weightsFile
        guard FileManager.default.fileExists(atPath: file) else { throw Error.missing("\(file) is missing") }
        try Self.checkShapes(try SafeTensors.shapes(path: file), of: config.parameterLayout, in: file)
        // Every weight is read next (checkShapes: all present), so nothing is drawn first.
        let model = try Seq2Seq(config: config, seed: nil)
        try loadWeights(into: model)
        return model
    }

    /// Reads the directory's weights into `model`.
    package func loadWeights(into model: Seq2Seq) throws { try loadWeights(into: model, from: nil) }

    /// The configuration of the model in the checkpoint `last`.
    public func loadCheckpointConfig() throws -> ModelConfig {
        guard let checkpoint = try lastCheckpoint() else {
            throw Error.missing("\(path) holds no checkpoint to continue from: \(lastPath) is missing "
                                + "(the run wrote none: keep-last false, or it stopped before its first validation)")
        }
        return try ModelDirectory(path + "/" + checkpoint).loadConfig()
    }

    /// Reads the weights of the checkpoint `last` into `model`.
    package func loadCheckpointWeights(into model: Seq2Seq) throws {
        guard let checkpoint = try lastCheckpoint() else { throw Error.missing("\(lastPath) is missing") }
        try loadWeights(into: model, from: checkpoint)
    }

    private func loadWeights(into model: Seq2Seq, from subdirectory: String?) throws {
        let file = (subdirectory.map { path + "/" + $0 } ?? path) + "/" + Self.weightsFile
        guard FileManager.default.fileExists(atPath: file) else { throw Error.missing("\(file) is missing") }
        let (tensors, _) = try SafeTensors.read(path: file)
        try Self.checkShapes(tensors.mapValues(\.shape), of: model.layout, in: file)
        for view in model.layout.views {
            let values = tensors[view.name]!.values
            guard values.allSatisfy(\.isFinite) else { throw Error.mismatch("\(view.name) in \(file) holds NaN or infinite values") }
            values.withUnsafeBufferPointer { model.parameters[view].update(from: $0.baseAddress!, count: view.count) }
        }
    }

    /// Checks that a weights file holds every tensor of `layout` with its shape, and nothing else.
    private static func checkShapes(_ shapes: [String: [Int]], of layout: ParameterLayout, in file: String) throws {
        for view in layout.views {
            guard let shape = shapes[view.name] else { throw Error.mismatch("\(file) has no tensor \(view.name) (shape \(view.shape))") }
            guard shape == view.shape else {
                throw Error.mismatch("\(view.name) has shape \(shape) in \(file) but the configuration needs \(view.shape)")
            }
        }
        let expected = Set(layout.views.map(\.name))
        if let extra = shapes.keys.sorted().first(where: { !expected.contains($0) }) {
            throw Error.mismatch("\(file) has a tensor \(extra) that the configuration does not use")
        }
    }

    // MARK: The vocabulary

    /// Copies the SentencePiece model file(s) into the directory and writes vocabulary.json, each
    /// through a temporary file and a rename, so a reader never sees a half-copied model.
    package func installVocabulary(sourceLang: String, targetLang: String, sourceModel: String, targetModel: String) throws {
        for file in Set([sourceModel, targetModel]) {
            try AtomicFile.write(try Self.contents(of: file), to: path + "/" + (file as NSString).lastPathComponent)
        }
        let files = VocabularyFiles(sourceLang: sourceLang, targetLang: targetLang, sourceModel: (sourceModel as NSString).lastPathComponent,
                                    targetModel: (targetModel as NSString).lastPathComponent)
        try AtomicFile.write(try Self.prettyJSON(files), to: path + "/" + Self.vocabularyFile)
    }

    /// Checks that the directory's vocabulary is the one the data was encoded with: the same languages
    /// and, byte for byte, the same SentencePiece model(s). Other models give the same ids other meanings,
    /// so training on would silently train another model.
    package func checkVocabulary(sourceLang: String, targetLang: String, sourceModel: String, targetModel: String) throws {
        let files = try vocabularyFiles()
        guard files.sourceLang == sourceLang && files.targetLang == targetLang else {
            throw Error.mismatch("\(path)/\(Self.vocabularyFile) is for \(files.sourceLang)-\(files.targetLang), the data for \(sourceLang)-\(targetLang)")
        }
        for (data, installed) in [(sourceModel, path + "/" + files.sourceModel), (targetModel, path + "/" + files.targetModel)] {
            guard try Self.contents(of: data) == Self.contents(of: installed) else {
                throw Error.mismatch("the data's SentencePiece model \(data) differs from the model's \(installed): "
                                     + "the data was preprocessed with another vocabulary")
            }
        }
    }

    /// The source and target SentencePiece models (one object when the vocabulary is joint). A checkpoint
    /// (`last-N`) has none of its own: it uses its model directory's.
    /// `directory` is where the files are (the run's, for a checkpoint).
    package func loadVocabulary() throws -> (files: VocabularyFiles, directory: String, source: SentencePiece, target: SentencePiece) {
        let checkpointOf = (path as NSString).deletingLastPathComponent
        if (path as NSString).lastPathComponent.hasPrefix(Self.lastLink + "-"),
           !FileManager.default.fileExists(atPath: path + "/" + Self.vocabularyFile) {
            return try ModelDirectory(checkpointOf).loadVocabulary()
        }
        let files = try vocabularyFiles()
        let source = try SentencePiece(modelPath: path + "/" + files.sourceModel)
        let target = files.targetModel == files.sourceModel ? source : try SentencePiece(modelPath: path + "/" + files.targetModel)
        return (files, path, source, target)
    }

    /// vocabulary.json.
    private func vocabularyFiles() throws -> VocabularyFiles {
        let file = path + "/" + Self.vocabularyFile
        guard let data = FileManager.default.contents(atPath: file) else {
            throw Error.missing("\(path) is not a model directory: \(Self.vocabularyFile) is missing")
        }
        return try JSONFile.decode(VocabularyFiles.self, from: data, path: file)
    }

    package static func contents(of file: String) throws -> Data {
        do { return try Data(contentsOf: URL(fileURLWithPath: file)) } catch {
            throw FileError("read", file, (error as NSError).localizedFailureReason ?? error.localizedDescription)
        }
    }

    /// Checks that a directory exists and holds a model, before anything is loaded from it.
    /// The lexical shortlist (`Shortlist.fileName`), with the ids of this directory's vocabularies; a
    /// checkpoint (`RUN/last`, `RUN/last-N`) uses its run's, as it uses its run's vocabulary.
    package func loadShortlist(sourceVocabSize: Int, targetVocabSize: Int) throws -> Shortlist {
        let name = (self.path as NSString).lastPathComponent
        if name == Self.lastLink || name.hasPrefix(Self.lastLink + "-"),
           !FileManager.default.fileExists(atPath: self.path + "/" + Shortlist.fileName) {
            return try ModelDirectory((self.path as NSString).deletingLastPathComponent)
                .loadShortlist(sourceVocabSize: sourceVocabSize, targetVocabSize: targetVocabSize)
        }
        let path = self.path + "/" + Shortlist.fileName
        guard let data = FileManager.default.contents(atPath: path) else {
            throw Error.missing("\(path) does not exist: write it with mt-shortlist")
        }
        return try Shortlist(text: String(decoding: data, as: UTF8.self), path: path, sourceVocabSize: sourceVocabSize,
                             targetVocabSize: targetVocabSize)
    }

    /// Estimates the shortlist of this directory's model on a parallel corpus (its first `maxPairs` pairs,
    /// encoded with the directory's SentencePiece models) and writes it beside the model. Returns the
    /// number of pairs used.
    public func writeShortlist(sourceFile: String, targetFile: String, maxPairs: Int = 1_000_000, keep: Int = 100,
                               iterations: Int = 5) throws -> Int {
        let vocabulary = try loadVocabulary()
        let pairs = try encodedSentencePairs(sourceFile: sourceFile, targetFile: targetFile, source: vocabulary.source,
                                             target: vocabulary.target, maxPairs: maxPairs)
        guard !pairs.isEmpty else { throw Error.missing("\(sourceFile) and \(targetFile) have no sentence pairs") }
        let shortlist = Shortlist.build(pairs: pairs, sourceVocabSize: vocabulary.source.vocabularySize,
                                        targetVocabSize: vocabulary.target.vocabularySize, iterations: iterations, keep: keep)
        try saveShortlist(shortlist)
        return pairs.count
    }

    /// Writes the shortlist beside the model.
    package func saveShortlist(_ shortlist: Shortlist) throws {
        try AtomicFile.write(Data(shortlist.text().utf8), to: path + "/" + Shortlist.fileName)
    }

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

    /// Whether the directory holds a training run that `--resume` could continue: the link `last`,
    /// wherever it points.
    package var holdsTrainingRun: Bool { (try? FileManager.default.attributesOfItem(atPath: lastPath)) != nil }

    /// The name of the checkpoint directory `last` points to, nil when there is no `last`. It must be a
    /// `last-N` beside the link: anything else (an absolute path, `..`, a link to a link) is refused,
    /// because a checkpoint is read for `--resume` and deleted when the next one is written.
    package func lastCheckpoint() throws -> String? {
        guard holdsTrainingRun else { return nil }
        guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: lastPath) else {
            throw Error.unsafeLink("\(lastPath) is not a symbolic link to a checkpoint directory")
        }
        let inside = target.hasPrefix(Self.lastLink + "-") && !target.contains("/")
        let type = try? FileManager.default.attributesOfItem(atPath: path + "/" + target)[.type] as? FileAttributeType
        guard inside && type != .typeSymbolicLink else {
            throw Error.unsafeLink("\(lastPath) points to \(target), which is not a checkpoint directory inside \(path) "
                                   + "(a checkpoint is a \(Self.lastLink)-N directory beside the link)")
        }
        return target
    }

    /// Starting over (--overwrite): removes every file the previous model and its run wrote, so that no
    /// file of it outlives the new run's first ones. A link is removed, never what it points to.
    package func removeModel() throws {
        let fm = FileManager.default
        let vocabulary = (try? vocabularyFiles()).map { [$0.sourceModel, $0.targetModel] } ?? []
        let owned = Set([Self.configFile, Self.weightsFile, Self.vocabularyFile, Self.optionsFile, Self.logFile, Self.plotFile,
                         Shortlist.fileName, Self.lastLink] + vocabulary.filter { !$0.contains("/") })
        for item in (try? fm.contentsOfDirectory(atPath: path)) ?? [] where owned.contains(item) || item.hasPrefix(Self.lastLink + "-") {
            try fm.removeItem(atPath: path + "/" + item)
        }
    }

    /// Writes a checkpoint into a new directory `last-UPDATE` (the model's weights and configuration plus
    /// the trainer's `files`), then points the symbolic link `last` at it with an atomic rename. Weights and
    /// the trainer's files always change together. The previous checkpoint stays until the next switch, so
    /// a reader that resolved `last` just before this one (mt-translate --model DIR/last) reads it whole;
    /// older ones go.
    package func saveCheckpoint(update: Int, model: Seq2Seq, files: [(name: String, data: Data)],
                                tensorFiles: [(name: String, tensors: [SafeTensors.Source])] = []) throws {
        let fm = FileManager.default
        let previous = try lastCheckpoint()
        // A run resumed and stopped at once checkpoints the same update again: never overwrite the
        // checkpoint `last` points to, or a crash in between would leave no checkpoint at all.
        var name = Self.lastLink + "-\(update)"
        if name == previous { name += "-again" }
        let target = path + "/" + name
        try? fm.removeItem(atPath: target)
        try saveModel(model, in: name)
        for file in files { try AtomicFile.write(file.data, to: target + "/" + file.name) }
        for file in tensorFiles { try SafeTensors.write(file.tensors, to: target + "/" + file.name) }
        let temporaryLink = path + "/.\(Self.lastLink).tmp-\(getpid())"
        try? fm.removeItem(atPath: temporaryLink)
        guard symlink(name, temporaryLink) == 0, rename(temporaryLink, lastPath) == 0 else {
            throw FileError("switch", "\(lastPath) to \(name)", FileError.systemReason())
        }
        let dirfd = open(path, O_RDONLY)
        if dirfd >= 0 { fsync(dirfd); close(dirfd) }
        for item in (try? fm.contentsOfDirectory(atPath: path)) ?? []
        where item.hasPrefix(Self.lastLink + "-") && item != name && item != previous {
            try? fm.removeItem(atPath: path + "/" + item)
        }
    }

    /// One of the trainer's files in the checkpoint `last` points to.
    package func checkpointFile(_ name: String) throws -> Data {
        let file = try checkpointFilePath(name)
        guard let data = FileManager.default.contents(atPath: file) else { throw Error.missing("\(file) is missing") }
        return data
    }

    /// One of the trainer's JSON files in the checkpoint `last` points to, decoded, and the path that names it.
    package func checkpointJSON<T: Decodable>(_ name: String, as type: T.Type) throws -> (value: T, path: String) {
        let file = try checkpointFilePath(name)
        return (try JSONFile.decode(type, from: try checkpointFile(name), path: file), file)
    }

    /// The path of one of the trainer's files, in the checkpoint directory `last` points to (`DIR/last-N/NAME`).
    private func checkpointFilePath(_ name: String) throws -> String {
        guard let checkpoint = try lastCheckpoint() else { throw Error.missing("\(lastPath) is missing") }
        return path + "/" + checkpoint + "/" + name
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
    package var sourceLang: String
    package var targetLang: String
    /// File names inside the model directory (the same file when the vocabulary is joint).
    package var sourceModel: String
    package var targetModel: String

    init(sourceLang: String, targetLang: String, sourceModel: String, targetModel: String) {
        self.sourceLang = sourceLang
        self.targetLang = targetLang
        self.sourceModel = sourceModel
        self.targetModel = targetModel
    }
}
