import CSentencePiece
import Foundation
import NMTTensor

/// SentencePiece model types that can be trained.
public enum SentencePieceModelType: String, Codable, Sendable, CaseIterable {
    case bpe
    case unigram
    case char
    case word
}

/// Options for `SentencePiece.train`. Each maps to one `spm_train` flag.
struct SentencePieceTrainingOptions: Codable, Sendable, Equatable {
    /// `--vocab_size`: number of pieces including the four special ones.
    var vocabSize: Int
    /// `--model_type`.
    var modelType: SentencePieceModelType
    /// `--character_coverage`: 1.0 keeps every character of the training text (good for
    /// alphabetic scripts); 0.9995 is SentencePiece's default for large character sets.
    var characterCoverage: Double
    /// `--input_sentence_size`: at most this many training sentences are used (0 = all).
    var inputSentenceSize: Int
    /// `--shuffle_input_sentence`: sample randomly when there are more than `inputSentenceSize`.
    var shuffleInputSentence: Bool
    /// `--num_threads`.
    var numThreads: Int
    /// `--max_sentence_length` in bytes: longer training sentences are skipped by the trainer.
    var maxSentenceLength: Int
    /// `--hard_vocab_limit`: when false, `vocabSize` is a soft limit (unigram only).
    var hardVocabLimit: Bool
    /// Print the trainer's INFO log to stderr.
    var verbose: Bool
    /// Further `spm_train` flags (name without dashes -> value). The special ids cannot be changed.
    var extraFlags: [String: String]

    init(vocabSize: Int = 8000,
                modelType: SentencePieceModelType = .bpe,
                characterCoverage: Double = 1.0,
                inputSentenceSize: Int = 2_000_000,
                shuffleInputSentence: Bool = true,
                numThreads: Int = ProcessInfo.processInfo.activeProcessorCount,
                maxSentenceLength: Int = 4192,
                hardVocabLimit: Bool = true,
                verbose: Bool = false,
                extraFlags: [String: String] = [:]) {
        self.vocabSize = vocabSize
        self.modelType = modelType
        self.characterCoverage = characterCoverage
        self.inputSentenceSize = inputSentenceSize
        self.shuffleInputSentence = shuffleInputSentence
        self.numThreads = numThreads
        self.maxSentenceLength = maxSentenceLength
        self.hardVocabLimit = hardVocabLimit
        self.verbose = verbose
        self.extraFlags = extraFlags
    }

    /// The trainer flags (without leading dashes), special ids included.
    var trainerFlags: [(String, String)] {
        var flags: [String: String] = extraFlags
        flags["vocab_size"] = String(vocabSize)
        flags["model_type"] = modelType.rawValue
        flags["character_coverage"] = String(characterCoverage)
        flags["input_sentence_size"] = String(inputSentenceSize)
        flags["shuffle_input_sentence"] = shuffleInputSentence ? "true" : "false"
        flags["num_threads"] = String(max(1, numThreads))
        flags["max_sentence_length"] = String(maxSentenceLength)
        flags["hard_vocab_limit"] = hardVocabLimit ? "true" : "false"
        flags["minloglevel"] = verbose ? "0" : "1"
        flags["pad_id"] = String(SpecialTokens.pad)
        flags["unk_id"] = String(SpecialTokens.unk)
        flags["bos_id"] = String(SpecialTokens.bos)
        flags["eos_id"] = String(SpecialTokens.eos)
        flags["pad_piece"] = SpecialTokens.padPiece
        flags["unk_piece"] = SpecialTokens.unkPiece
        flags["bos_piece"] = SpecialTokens.bosPiece
        flags["eos_piece"] = SpecialTokens.eosPiece
        return flags.sorted { $0.key < $1.key }
    }
}

/// A loaded SentencePiece model (libsentencepiece's `SentencePieceProcessor`).
///
/// Immutable after loading; all methods may be called from several threads at once.
public final class SentencePiece: @unchecked Sendable {
    private let handle: OpaquePointer

    /// Loads a `.model` file.
    package init(modelPath: String) throws {
        guard FileManager.default.fileExists(atPath: modelPath) else {
            throw SentencePieceError("SentencePiece model '\(modelPath)' does not exist")
        }
        var error: UnsafeMutablePointer<CChar>?
        guard let h = spm_load(modelPath, &error) else { throw SentencePiece.takeError(error, "cannot load '\(modelPath)'") }
        handle = h
    }

    /// Loads a model from the bytes of a `.model` file (a serialized ModelProto).
    init(serializedModel: [UInt8]) throws {
        var error: UnsafeMutablePointer<CChar>?
        let h = serializedModel.withUnsafeBufferPointer { spm_load_from_serialized($0.baseAddress, $0.count, &error) }
        guard let h else { throw SentencePiece.takeError(error, "cannot load model bytes") }
        handle = h
    }

    deinit { spm_free(handle) }

    // MARK: Training

    /// Trains a model on in-memory sentences (one sentence per element; no newlines needed).
    /// When `modelPath` is given the model is also written there (and the vocabulary as
    /// `piece<TAB>score` lines next to it, with the extension `.vocab`).
    static func train(sentences: [String], options: SentencePieceTrainingOptions = .init(),
                             modelPath: String? = nil) throws -> SentencePiece {
        var bytes: [UInt8] = []
        var ranges: [Range<Int>] = []
        ranges.reserveCapacity(sentences.count)
        for s in sentences {
            let start = bytes.count
            bytes.append(contentsOf: s.utf8)
            ranges.append(start..<bytes.count)
        }
        let model = try bytes.withUnsafeBytes { buf in
            try train(utf8Sentences: ranges.map { UnsafeRawBufferPointer(rebasing: buf[$0]) }, options: options)
        }
        if let modelPath {
            try model.writeModel(to: modelPath)
            try model.writeVocabulary(to: SentencePiece.vocabularyPath(forModel: modelPath))
        }
        return model
    }

    /// Trains on sentences given as UTF-8 byte buffers (no copies into Strings); the buffers
    /// need to stay valid only during the call.
    static func train(utf8Sentences sentences: [UnsafeRawBufferPointer],
                             options: SentencePieceTrainingOptions = .init()) throws -> SentencePiece {
        try validate(options)
        guard !sentences.isEmpty else { throw SentencePieceError("SentencePiece training: no training sentences") }
        let empty: StaticString = ""
        let pointers: [UnsafePointer<CChar>?] = sentences.map {
            ($0.baseAddress ?? UnsafeRawPointer(empty.utf8Start)).assumingMemoryBound(to: CChar.self)
        }
        let lengths: [Int] = sentences.map { $0.count }
        let bytes = try pointers.withUnsafeBufferPointer { p in
            try lengths.withUnsafeBufferPointer { l in
                try runTrainer(options.trainerFlags, sentences: p.baseAddress, lengths: l.baseAddress, count: p.count, returnModel: true)
            }
        }
        guard let bytes else { throw SentencePieceError("SentencePiece training returned no model") }
        return try SentencePiece(serializedModel: bytes)
    }

    /// Trains on text files (one sentence per line), as `spm_train --input=a,b`. The trainer
    /// writes `modelPrefix.model` and `modelPrefix.vocab`; the trained model is returned.
    static func train(inputFiles: [String], modelPrefix: String,
                             options: SentencePieceTrainingOptions = .init()) throws -> SentencePiece {
        try validate(options)
        guard !inputFiles.isEmpty else { throw SentencePieceError("SentencePiece training: no input files") }
        for f in inputFiles where !FileManager.default.fileExists(atPath: f) {
            throw SentencePieceError("SentencePiece training: input file '\(f)' does not exist")
        }
        if inputFiles.contains(where: { $0.contains(",") }) {
            throw SentencePieceError("SentencePiece training: input file names must not contain ','")
        }
        var flags = options.trainerFlags
        flags.append(("input", inputFiles.joined(separator: ",")))
        flags.append(("model_prefix", modelPrefix))
        _ = try runTrainer(flags, sentences: nil, lengths: nil, count: 0, returnModel: false)
        return try SentencePiece(modelPath: modelPrefix + ".model")
    }

    private static func validate(_ o: SentencePieceTrainingOptions) throws {
        guard o.vocabSize > SpecialTokens.count else {
            throw SentencePieceError("vocabulary size must be larger than \(SpecialTokens.count), got \(o.vocabSize)")
        }
        guard o.characterCoverage > 0, o.characterCoverage <= 1 else {
            throw SentencePieceError("character coverage must be in (0, 1], got \(o.characterCoverage)")
        }
    }

    /// Runs the trainer; returns the serialized model when `returnModel` (else the trainer writes files).
    private static func runTrainer(_ flags: [(String, String)], sentences: UnsafePointer<UnsafePointer<CChar>?>?,
                                   lengths: UnsafePointer<Int>?, count: Int, returnModel: Bool) throws -> [UInt8]? {
        try withCStrings(flags) { keys, values in
            var error: UnsafeMutablePointer<CChar>?
            var out: UnsafeMutablePointer<UInt8>?
            var outLength = 0
            let rc = returnModel
                ? spm_train(keys, values, flags.count, sentences, lengths, count, &out, &outLength, &error)
                : spm_train(keys, values, flags.count, sentences, lengths, count, nil, nil, &error)
            if rc != 0 { throw takeError(error, "SentencePiece training failed") }
            guard let out else { return nil }
            defer { spm_free_buffer(out) }
            return Array(UnsafeBufferPointer(start: out, count: outLength))
        }
    }

    private static func withCStrings<R>(_ flags: [(String, String)],
                                        _ body: (UnsafePointer<UnsafePointer<CChar>?>, UnsafePointer<UnsafePointer<CChar>?>) throws -> R) rethrows -> R {
        let keys = flags.map { strdup($0.0) }
        let values = flags.map { strdup($0.1) }
        defer {
            keys.forEach { free($0) }
            values.forEach { free($0) }
        }
        let k: [UnsafePointer<CChar>?] = keys.map { UnsafePointer($0) }
        let v: [UnsafePointer<CChar>?] = values.map { UnsafePointer($0) }
        return try k.withUnsafeBufferPointer { kb in
            try v.withUnsafeBufferPointer { vb in
                try body(kb.baseAddress!, vb.baseAddress!)
            }
        }
    }

    static func takeError(_ error: UnsafeMutablePointer<CChar>?, _ fallback: String) -> SentencePieceError {
        guard let error else { return SentencePieceError(fallback) }
        defer { spm_free_buffer(error) }
        return SentencePieceError(String(cString: error))
    }

    // MARK: Saving

    /// The bytes of the model (what a `.model` file holds).
    func serializedModel() throws -> [UInt8] {
        var out: UnsafeMutablePointer<UInt8>?
        var length = 0
        var error: UnsafeMutablePointer<CChar>?
        guard spm_serialized_model(handle, &out, &length, &error) == 0, let out else {
            throw SentencePiece.takeError(error, "cannot serialize the model")
        }
        defer { spm_free_buffer(out) }
        return Array(UnsafeBufferPointer(start: out, count: length))
    }

    /// Writes the `.model` file.
    func writeModel(to path: String) throws {
        try Data(serializedModel()).write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    /// Writes the vocabulary as text, one `piece<TAB>score` line per id in id order
    /// (line 1 = id 0), like `spm_train`'s `.vocab` file.
    func writeVocabulary(to path: String) throws {
        var text = ""
        text.reserveCapacity(vocabularySize * 16)
        for id in 0..<Int32(vocabularySize) {
            text += idToPiece(id) ?? ""
            text += "\t"
            text += String(score(id))
            text += "\n"
        }
        try Data(text.utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    /// `x.model` -> `x.vocab` (any other name gets `.vocab` appended).
    static func vocabularyPath(forModel modelPath: String) -> String {
        modelPath.hasSuffix(".model") ? String(modelPath.dropLast(6)) + ".vocab" : modelPath + ".vocab"
    }

    // MARK: Vocabulary

    /// Number of pieces, special ones included.
    package var vocabularySize: Int { Int(spm_piece_size(handle)) }
    /// The model's own special ids (`-1` when absent). Models trained by SwiftNMT have
    /// `SpecialTokens.pad/unk/bos/eos`.
    var unkId: Int32 { spm_unk_id(handle) }
    var bosId: Int32 { spm_bos_id(handle) }
    var eosId: Int32 { spm_eos_id(handle) }
    var padId: Int32 { spm_pad_id(handle) }

    /// True when the model's special ids are SwiftNMT's `SpecialTokens`.
    var hasStandardSpecialIds: Bool {
        padId == SpecialTokens.pad && unkId == SpecialTokens.unk && bosId == SpecialTokens.bos && eosId == SpecialTokens.eos
    }

    /// Id of a piece; `unkId` when the piece is not in the vocabulary.
    func pieceToId(_ piece: String) -> Int32 {
        var p = piece
        return p.withUTF8 { b in
            b.withMemoryRebound(to: CChar.self) { spm_piece_to_id(handle, $0.baseAddress, $0.count) }
        }
    }

    /// The piece of an id; nil when out of range.
    public func idToPiece(_ id: Int32) -> String? {
        var length = 0
        guard let p = spm_id_to_piece(handle, id, &length) else { return nil }
        return p.withMemoryRebound(to: UInt8.self, capacity: max(length, 1)) {
            String(decoding: UnsafeBufferPointer(start: $0, count: length), as: UTF8.self)
        }
    }

    /// Score of an id (log probability for unigram, minus the merge rank for BPE); 0 when out of range.
    func score(_ id: Int32) -> Float { spm_score(handle, id) }
    func isUnknown(_ id: Int32) -> Bool { spm_is_unknown(handle, id) != 0 }
    func isControl(_ id: Int32) -> Bool { spm_is_control(handle, id) != 0 }
    func isUnused(_ id: Int32) -> Bool { spm_is_unused(handle, id) != 0 }
    func isByte(_ id: Int32) -> Bool { spm_is_byte(handle, id) != 0 }

    // MARK: Encoding

    /// Encodes text to ids (no `bos`/`eos`).
    package func encode(_ text: String) throws -> [Int32] {
        var t = text
        var ids: [Int32] = []
        try t.withUTF8 { try encode(utf8: UnsafeRawBufferPointer($0), into: &ids) }
        return ids
    }

    /// Encodes UTF-8 bytes, replacing the contents of `ids` (its capacity is reused).
    func encode(utf8 text: UnsafeRawBufferPointer, into ids: inout [Int32]) throws {
        ids.removeAll(keepingCapacity: true)
        _ = try encode(utf8: text, appendingTo: &ids)
    }

    /// Encodes UTF-8 bytes and appends the ids to `ids`; returns how many were appended.
    @discardableResult
    func encode(utf8 text: UnsafeRawBufferPointer, appendingTo ids: inout [Int32]) throws -> Int {
        let ptr = text.baseAddress?.assumingMemoryBound(to: CChar.self)
        let capacity = max(32, text.count + 8)
        var needed = 0
        let done: Bool = try withUnsafeTemporaryAllocation(of: Int32.self, capacity: capacity) { buf in
            var error: UnsafeMutablePointer<CChar>?
            if spm_encode_ids(handle, ptr, text.count, buf.baseAddress, buf.count, &needed, &error) != 0 {
                throw SentencePiece.takeError(error, "encoding failed")
            }
            if needed <= buf.count {
                ids.append(contentsOf: UnsafeBufferPointer(rebasing: buf[0..<needed]))
                return true
            }
            return false
        }
        if done { return needed }
        // Normalization expanded the text beyond the first guess: retry with the exact size.
        var big = [Int32](repeating: 0, count: needed)
        var count = 0
        var error: UnsafeMutablePointer<CChar>?
        let rc = big.withUnsafeMutableBufferPointer { spm_encode_ids(handle, ptr, text.count, $0.baseAddress, $0.count, &count, &error) }
        if rc != 0 { throw SentencePiece.takeError(error, "encoding failed") }
        guard count <= big.count else { throw SentencePieceError("encoding failed: inconsistent piece count") }
        ids.append(contentsOf: big[0..<count])
        return count
    }

    /// Encodes text to pieces.
    func encodeAsPieces(_ text: String) throws -> [String] {
        var t = text
        return try t.withUTF8 { b -> [String] in
            var bytes: UnsafeMutablePointer<CChar>?
            var lengths: UnsafeMutablePointer<Int>?
            var count = 0
            var error: UnsafeMutablePointer<CChar>?
            let rc = b.withMemoryRebound(to: CChar.self) {
                spm_encode_pieces(handle, $0.baseAddress, $0.count, &bytes, &lengths, &count, &error)
            }
            if rc != 0 { throw SentencePiece.takeError(error, "encoding failed") }
            defer {
                spm_free_buffer(bytes)
                spm_free_buffer(lengths)
            }
            var pieces: [String] = []
            pieces.reserveCapacity(count)
            var at = 0
            let raw = UnsafeRawPointer(bytes!)
            for i in 0..<count {
                let n = lengths![i]
                pieces.append(String(decoding: UnsafeRawBufferPointer(start: raw + at, count: n), as: UTF8.self))
                at += n
            }
            return pieces
        }
    }

    // MARK: Decoding

    /// Decodes ids to text. Control ids (pad, bos, eos) decode to nothing; ids out of range throw.
    package func decode(_ ids: [Int32]) throws -> String {
        try ids.withUnsafeBufferPointer { try decode($0) }
    }

    func decode(_ ids: UnsafeBufferPointer<Int32>) throws -> String {
        var text: UnsafeMutablePointer<CChar>?
        var length = 0
        var error: UnsafeMutablePointer<CChar>?
        let rc = spm_decode_ids(handle, ids.baseAddress, ids.count, &text, &length, &error)
        if rc != 0 { throw SentencePiece.takeError(error, "decoding failed") }
        defer { spm_free_buffer(text) }
        return String(decoding: UnsafeRawBufferPointer(start: text, count: length), as: UTF8.self)
    }

    /// Decodes pieces to text.
    func decode(pieces: [String]) throws -> String {
        var bytes: [UInt8] = []
        var lengths: [Int] = []
        for p in pieces {
            bytes.append(contentsOf: p.utf8)
            lengths.append(p.utf8.count)
        }
        var text: UnsafeMutablePointer<CChar>?
        var length = 0
        var error: UnsafeMutablePointer<CChar>?
        let rc = bytes.withUnsafeBufferPointer { b in
            lengths.withUnsafeBufferPointer { l in
                b.withMemoryRebound(to: CChar.self) {
                    spm_decode_pieces(handle, $0.baseAddress, l.baseAddress, l.count, &text, &length, &error)
                }
            }
        }
        if rc != 0 { throw SentencePiece.takeError(error, "decoding failed") }
        defer { spm_free_buffer(text) }
        return String(decoding: UnsafeRawBufferPointer(start: text, count: length), as: UTF8.self)
    }
}
