import NMTTensor

/// The architecture of a model: everything needed to lay out its parameters.
/// `docs/model.md` gives the equations and every parameter's name and shape.
public struct ModelConfig: Codable, Equatable, Sendable {
    package var sourceVocabSize: Int
    package var targetVocabSize: Int
    /// E: embedding size; also the deep output size, so the output projection can be tied to the target embedding.
    package var embedSize: Int
    /// Hidden size of each direction of the bidirectional encoder layer; annotations are twice this.
    package var encoderHiddenSize: Int
    /// Encoder GRU layers: the first is bidirectional, the rest unidirectional over the annotations.
    package var encoderLayers: Int
    /// D: hidden size of every decoder GRU.
    package var decoderHiddenSize: Int
    /// Decoder GRU layers, at least 2: the conditional GRU's two, then further stacked layers.
    package var decoderLayers: Int
    /// A: size of the additive attention's hidden layer.
    package var attentionSize: Int
    /// One embedding table for source and target (requires a joint vocabulary).
    package var sharedEmbeddings: Bool
    /// The output projection reuses the target embedding table.
    package var tiedOutput: Bool

    /// The default sizes are the reference model's (and `mt-train`'s defaults).
    package init(sourceVocabSize: Int, targetVocabSize: Int, embedSize: Int = 256, encoderHiddenSize: Int = 256,
                encoderLayers: Int = 1, decoderHiddenSize: Int = 512, decoderLayers: Int = 2, attentionSize: Int = 512,
                sharedEmbeddings: Bool = false, tiedOutput: Bool = false) {
        self.sourceVocabSize = sourceVocabSize
        self.targetVocabSize = targetVocabSize
        self.embedSize = embedSize
        self.encoderHiddenSize = encoderHiddenSize
        self.encoderLayers = encoderLayers
        self.decoderHiddenSize = decoderHiddenSize
        self.decoderLayers = decoderLayers
        self.attentionSize = attentionSize
        self.sharedEmbeddings = sharedEmbeddings
        self.tiedOutput = tiedOutput
    }

    /// The reference model of the benchmarks: joint vocabulary 8,000, embeddings 256, one bidirectional
    /// encoder layer of 256 per direction, decoder GRUs of 512, attention 512.
    public static func reference(vocabSize: Int = 8000) -> ModelConfig {
        ModelConfig(sourceVocabSize: vocabSize, targetVocabSize: vocabSize, sharedEmbeddings: true, tiedOutput: true)
    }

    /// `model.json`'s keys, kebab-case like `training.yaml`'s.
    enum CodingKeys: String, CodingKey {
        case sourceVocabSize = "source-vocab-size", targetVocabSize = "target-vocab-size", embedSize = "embed-size"
        case encoderHiddenSize = "encoder-hidden-size", encoderLayers = "encoder-layers"
        case decoderHiddenSize = "decoder-hidden-size", decoderLayers = "decoder-layers", attentionSize = "attention-size"
        case sharedEmbeddings = "shared-embeddings", tiedOutput = "tied-output"
    }

    /// Reads kebab-case keys, and the camelCase ones of model.json files written before, such as the
    /// shipped checkpoints'.
    public init(from decoder: Swift.Decoder) throws {
        let kebab = try decoder.container(keyedBy: CodingKeys.self)
        let camel = try decoder.container(keyedBy: CamelCaseKey.self)
        func value<T: Decodable>(_ key: CodingKeys) throws -> T {
            let old = CamelCaseKey(key)
            if !kebab.contains(key) && camel.contains(old) { return try camel.decode(T.self, forKey: old) }
            return try kebab.decode(T.self, forKey: key)
        }
        self.init(sourceVocabSize: try value(.sourceVocabSize), targetVocabSize: try value(.targetVocabSize),
                  embedSize: try value(.embedSize), encoderHiddenSize: try value(.encoderHiddenSize),
                  encoderLayers: try value(.encoderLayers), decoderHiddenSize: try value(.decoderHiddenSize),
                  decoderLayers: try value(.decoderLayers), attentionSize: try value(.attentionSize),
                  sharedEmbeddings: try value(.sharedEmbeddings), tiedOutput: try value(.tiedOutput))
    }

    /// `embedSize` for `embed-size`.
    private struct CamelCaseKey: CodingKey {
        let stringValue: String
        init(_ key: CodingKeys) {
            let words = key.stringValue.split(separator: "-")
            stringValue = words[0] + words.dropFirst().map { $0.prefix(1).uppercased() + $0.dropFirst() }.joined()
        }
        init?(stringValue: String) { self.stringValue = stringValue }
        var intValue: Int? { nil }
        init?(intValue: Int) { nil }
    }

    /// C: size of an encoder annotation.
    var contextSize: Int { 2 * encoderHiddenSize }

    /// The largest vocabulary (mt-preprocess's `--vocab-size` bound), layer size and layer count (mt-train's
    /// option bounds) of any model: a configuration beyond them, from a garbled or forged model.json, is
    /// refused before anything is allocated for it.
    package static let maxVocabSize = 100_000, maxLayerSize = 2048, maxLayers = 8

    /// Every parameter's name and shape, without allocating them.
    package var parameterLayout: ParameterLayout { Seq2Seq.makeLayout(self).0 }

    package func validate() throws {
        func check(_ ok: Bool, _ message: String) throws { if !ok { throw ModelError.invalidConfig(message) } }
        let vocabularySizes = SpecialTokens.count + 1...Self.maxVocabSize, layerSizes = 1...Self.maxLayerSize
        try check(vocabularySizes.contains(sourceVocabSize) && vocabularySizes.contains(targetVocabSize),
                  "vocabulary sizes must be from \(vocabularySizes.lowerBound) to \(Self.maxVocabSize), not \(sourceVocabSize) and \(targetVocabSize)")
        try check([embedSize, encoderHiddenSize, decoderHiddenSize, attentionSize].allSatisfy(layerSizes.contains),
                  "layer sizes must be from 1 to \(Self.maxLayerSize)")
        try check((1...Self.maxLayers).contains(encoderLayers), "encoderLayers must be from 1 to \(Self.maxLayers), not \(encoderLayers)")
        try check((2...Self.maxLayers).contains(decoderLayers),
                  "decoderLayers must be from 2 (the conditional GRU) to \(Self.maxLayers), not \(decoderLayers)")
        try check(!sharedEmbeddings || sourceVocabSize == targetVocabSize, "sharedEmbeddings needs equal vocabulary sizes")
    }
}

enum ModelError: Error, CustomStringConvertible {
    case invalidConfig(String)

    var description: String {
        switch self {
        case .invalidConfig(let m): return "invalid model configuration: \(m)"
        }
    }
}

extension ModelConfig {
    /// The first field (in declaration order) whose value differs from `other`'s: its name and both
    /// values, for error messages; nil when the two are equal.
    package func firstDifference(from other: ModelConfig) -> (field: String, value: String, otherValue: String)? {
        for (x, y) in zip(Mirror(reflecting: self).children, Mirror(reflecting: other).children) where "\(x.value)" != "\(y.value)" {
            return (x.label ?? "?", "\(x.value)", "\(y.value)")
        }
        return nil
    }
}
