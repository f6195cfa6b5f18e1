import Foundation
import NMTModel
import NMTTensor
import NMTText

/// A model directory's weight and configuration files:
///   model.safetensors  the parameters, named and shaped as in docs/model.md
///   model.json         the `ModelConfig`
public enum ModelFiles {
    public static let weights = "model.safetensors"
    public static let config = "model.json"

    public enum Error: Swift.Error, CustomStringConvertible {
        case missing(String)
        case mismatch(String)

        public var description: String {
            switch self {
            case .missing(let m): return m
            case .mismatch(let m): return m
            }
        }
    }

    public static func save(_ model: Seq2Seq, to directory: String, dtype: SafeTensors.DType = .f32) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let tensors = model.layout.views.map { view in
            SafeTensors.Tensor(name: view.name, shape: view.shape,
                               values: Array(UnsafeBufferPointer(start: model.parameters[view], count: view.count)))
        }
        for t in tensors where t.values.contains(where: { !$0.isFinite }) {
            throw Error.mismatch("refusing to save: \(t.name) holds NaN or infinite values")
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write(try SafeTensors.encode(tensors, dtype: dtype, metadata: ["format": "swiftnmt", "version": "1"]),
                             to: directory + "/" + weights)
        try AtomicFile.write(try encoder.encode(model.config), to: directory + "/" + config)
    }

    public static func loadConfig(from directory: String) throws -> ModelConfig {
        let path = directory + "/" + config
        guard let data = FileManager.default.contents(atPath: path) else {
            throw Error.missing("\(directory) is not a model directory: \(config) is missing")
        }
        do { return try JSONDecoder().decode(ModelConfig.self, from: data) } catch {
            throw Error.mismatch("\(path) is not a valid model configuration: \(error)")
        }
    }

    /// Loads a model, checking that every tensor the configuration needs is present with its shape
    /// and that nothing else is there; names the first difference.
    public static func load(from directory: String) throws -> Seq2Seq {
        let config = try loadConfig(from: directory)
        let model = try Seq2Seq(config: config)
        try loadWeights(into: model, from: directory + "/" + weights)
        return model
    }

    public static func loadWeights(into model: Seq2Seq, from path: String) throws {
        guard FileManager.default.fileExists(atPath: path) else { throw Error.missing("\(path) is missing") }
        let (tensors, _) = try SafeTensors.read(path: path)
        for view in model.layout.views {
            guard let t = tensors[view.name] else { throw Error.mismatch("\(path) has no tensor \(view.name) (shape \(view.shape))") }
            guard t.shape == view.shape else {
                throw Error.mismatch("\(view.name) has shape \(t.shape) in \(path) but the configuration needs \(view.shape)")
            }
            guard t.values.allSatisfy(\.isFinite) else { throw Error.mismatch("\(view.name) in \(path) holds NaN or infinite values") }
            t.values.withUnsafeBufferPointer { model.parameters[view].update(from: $0.baseAddress!, count: view.count) }
        }
        let expected = Set(model.layout.views.map(\.name))
        if let extra = tensors.keys.sorted().first(where: { !expected.contains($0) }) {
            throw Error.mismatch("\(path) has a tensor \(extra) that the configuration does not use")
        }
    }
}

/// Which SentencePiece models a model directory uses (`vocabulary.json`).
public struct VocabularyFiles: Codable, Equatable, Sendable {
    public var sourceLang: String
    public var targetLang: String
    /// File names inside the model directory (the same file when the vocabulary is joint).
    public var sourceModel: String
    public var targetModel: String

    public static let fileName = "vocabulary.json"

    public init(sourceLang: String, targetLang: String, sourceModel: String, targetModel: String) {
        self.sourceLang = sourceLang
        self.targetLang = targetLang
        self.sourceModel = sourceModel
        self.targetModel = targetModel
    }
}
