import Foundation
import NMTTensor
import NMTVersion

/// Options of `mt-preprocess` (fairseq-preprocess conventions; files are `PREFIX.LANG`).
public struct PreprocessOptions: Sendable {
    var sourceLang: String
    var targetLang: String
    /// Training prefix: reads `trainPrefix.sourceLang` and `trainPrefix.targetLang`.
    var trainPrefix: String
    /// Validation prefixes -> splits valid, valid1, ...
    var validPrefixes: [String]
    /// Test prefixes -> splits test, test1, ...
    var testPrefixes: [String]
    var destDir: String
    /// Vocabulary size of each SentencePiece model.
    var vocabSize: Int
    var modelType: SentencePieceModelType
    /// One model for both languages (true) or one per language.
    var joint: Bool
    var characterCoverage: Double
    /// Training pairs with a side longer than this many subwords are dropped.
    var maxLength: Int
    /// Training pairs whose subword lengths differ by more than this factor are dropped.
    var lengthRatio: Double
    /// At most this many sentences (per model) go into SentencePiece training (sampled).
    var inputSentenceSize: Int
    /// Threads for SentencePiece training and encoding.
    var threads: Int
    /// Overwrite a destination directory that holds something else.
    var force: Bool

    public init(sourceLang: String, targetLang: String, trainPrefix: String,
                validPrefixes: [String] = [], testPrefixes: [String] = [], destDir: String,
                vocabSize: Int = 8000, modelType: SentencePieceModelType = .bpe, joint: Bool = true,
                characterCoverage: Double = 1.0, maxLength: Int = 100, lengthRatio: Double = 9,
                inputSentenceSize: Int = 1_000_000,
                threads: Int = ProcessInfo.processInfo.activeProcessorCount, force: Bool = false) {
        self.sourceLang = sourceLang
        self.targetLang = targetLang
        self.trainPrefix = trainPrefix
        self.validPrefixes = validPrefixes
        self.testPrefixes = testPrefixes
        self.destDir = destDir
        self.vocabSize = vocabSize
        self.modelType = modelType
        self.joint = joint
        self.characterCoverage = characterCoverage
        self.maxLength = maxLength
        self.lengthRatio = lengthRatio
        self.inputSentenceSize = inputSentenceSize
        self.threads = threads
        self.force = force
    }

    /// Checks the option values (not the files).
    func validate() throws {
        for (name, lang) in [("source", sourceLang), ("target", targetLang)] {
            guard !lang.isEmpty, !lang.contains("/"), !lang.hasPrefix("."), !lang.contains(where: \.isWhitespace) else {
                throw PreprocessError("invalid \(name) language '\(lang)' (a short code like 'en')")
            }
        }
        guard sourceLang != targetLang else { throw PreprocessError("source and target language are both '\(sourceLang)'") }
        guard !trainPrefix.isEmpty else { throw PreprocessError("no training prefix") }
        guard !destDir.isEmpty else { throw PreprocessError("no destination directory") }
        guard vocabSize > SpecialTokens.count + 1 else {
            throw PreprocessError("vocabulary size must be larger than \(SpecialTokens.count + 1), got \(vocabSize)")
        }
        guard characterCoverage > 0, characterCoverage <= 1 else {
            throw PreprocessError("character coverage must be in (0, 1], got \(characterCoverage)")
        }
        guard maxLength >= 1 else { throw PreprocessError("maximum length must be at least 1, got \(maxLength)") }
        // Finite, as manifest.json (JSON) can hold no infinity; NaN fails the comparison too.
        guard lengthRatio >= 1 && lengthRatio.isFinite else { throw PreprocessError("length ratio must be a finite number of at least 1, got \(lengthRatio)") }
        guard inputSentenceSize >= 0 else { throw PreprocessError("input sentence size must not be negative") }
        guard threads >= 1 else { throw PreprocessError("threads must be at least 1") }
    }

    /// fairseq names: train; valid, valid1, ...; test, test1, ...
    var splits: [(name: String, kind: String, prefix: String)] {
        var s: [(String, String, String)] = [("train", "train", trainPrefix)]
        for (i, p) in validPrefixes.enumerated() { s.append((i == 0 ? "valid" : "valid\(i)", "valid", p)) }
        for (i, p) in testPrefixes.enumerated() { s.append((i == 0 ? "test" : "test\(i)", "test", p)) }
        return s
    }
}

/// What `Preprocessor.run` made.
public struct PreprocessResult: Sendable {
    var manifest: PreprocessManifest
    /// Statistics table for the user (what mt-preprocess prints on stdout).
    public var summary: String
    /// True when the destination already held the same preprocessing (it was regenerated).
    var regenerated: Bool
}

/// Raw parallel text -> SentencePiece model(s) + token datasets + manifest. See docs/data-format.md.
///
/// Memory does not grow with the corpus: every input is read twice as a stream of line chunks, once to
/// count, check and checksum it and to sample SentencePiece's training sentences, and once to encode
/// it chunk by chunk on all cores, appending each chunk's pairs to the token datasets.
public final class Preprocessor {
    let options: PreprocessOptions
    /// Lines per chunk of the encoding pass (each side); tests make it small.
    var chunkLines = 1 << 16
    /// Bytes per read of the input files; tests make it small.
    var readBlockSize = 1 << 20
    /// Step messages (mt-preprocess prints each on its own line of stderr).
    var log: (String) -> Void
    /// Progress of a long step, at most every `progressInterval` seconds (mt-preprocess rewrites one
    /// line on a terminal and prints a line now and then otherwise).
    var progress: (String) -> Void
    var progressInterval = 0.5

    public init(options: PreprocessOptions, log: @escaping (String) -> Void = { _ in },
                progress: @escaping (String) -> Void = { _ in }) {
        self.options = options
        self.log = log
        self.progress = progress
    }

    private var start = Date()

    private func step(_ message: String) {
        log(String(format: "[%6.2fs] ", Date().timeIntervalSince(start)) + message)
    }

    // MARK: Run

    public func run() throws -> PreprocessResult {
        start = Date()
        try options.validate()
        let o = options
        let langs = [o.sourceLang, o.targetLang]
        let fm = FileManager.default

        // 1. Inputs: all must exist before anything is read.
        var paths: [String: [String: String]] = [:]  // split -> lang -> path
        var missing: [String] = []
        for split in o.splits {
            for lang in langs {
                let p = split.prefix + "." + lang
                var isDirectory: ObjCBool = false
                if fm.fileExists(atPath: p, isDirectory: &isDirectory) {
                    if isDirectory.boolValue { throw PreprocessError("input '\(p)' is a directory, not a text file") }
                    paths[split.name, default: [:]][lang] = p
                } else if fm.fileExists(atPath: p + ".gz") { paths[split.name, default: [:]][lang] = p + ".gz" }
                else { missing.append("'\(p)'") }
            }
        }
        if !missing.isEmpty {
            throw PreprocessError("missing input file\(missing.count > 1 ? "s" : "") \(missing.joined(separator: ", ")) (also looked for .gz)")
        }

        // 2. First pass: count, check and checksum every input; sample SentencePiece's sentences from the training text.
        let groups: [(name: String, langs: [String])] = o.joint ? [("spm", langs)] : langs.map { ("spm.\($0)", [$0]) }
        let sampleSize = o.inputSentenceSize > 0 ? o.inputSentenceSize : Int.max
        var samples = groups.map { _ in SentenceSample(capacity: sampleSize) }
        var inputs: [InputInfo] = []
        for split in o.splits {
            var counts: [String: (path: String, lines: Int)] = [:]
            for lang in langs {
                let path = paths[split.name]![lang]!
                let group = groups.firstIndex { $0.langs.contains(lang) }!
                let info = try scan(path, split: split.name, lang: lang) { line in
                    if split.kind == "train" && !line.isEmpty { samples[group].offer(line) }
                }
                inputs.append(info)
                counts[lang] = (path, info.lines)
            }
            let s = counts[o.sourceLang]!, t = counts[o.targetLang]!
            if s.lines != t.lines {
                throw PreprocessError("source and target of \(split.name) have different line counts: '\(s.path)' has \(s.lines) lines, '\(t.path)' has \(t.lines) lines")
            }
            if split.kind == "train" && s.lines == 0 {
                throw PreprocessError("the training data is empty ('\(s.path)' has no lines)")
            }
        }
        let request = PreprocessRequest(sourceLang: o.sourceLang, targetLang: o.targetLang, vocabSize: o.vocabSize,
                                        modelType: o.modelType.rawValue, joint: o.joint, characterCoverage: o.characterCoverage,
                                        maxLength: o.maxLength, lengthRatio: o.lengthRatio,
                                        inputSentenceSize: o.inputSentenceSize, inputs: inputs)

        // 3. Destination.
        let (regenerated, previousOutputs) = try prepareDestination(for: request)
        var oldManifestRemoved = false
        let dest = o.destDir
        func out(_ name: String) -> String { (dest as NSString).appendingPathComponent(name) }
        var outputs: [String] = []

        // 4. SentencePiece, on the samples.
        var spmOptions = SentencePieceTrainingOptions(vocabSize: o.vocabSize, modelType: o.modelType,
                                                      characterCoverage: o.characterCoverage,
                                                      inputSentenceSize: o.inputSentenceSize, numThreads: o.threads)
        spmOptions.shuffleInputSentence = true
        var models: [String: SentencePiece] = [:]
        var modelFiles: [String: String] = [:], vocabFiles: [String: String] = [:]
        var trainingSentences: [String: Int] = [:]
        for (group, sample) in zip(groups, samples) {
            step("training SentencePiece \(o.modelType.rawValue) model \(group.name).model (vocabulary \(o.vocabSize)) on \(sample.count) of \(sample.seen) sentences (\(group.langs.joined(separator: "+")))")
            let model: SentencePiece
            do {
                model = try sample.withSentences { try SentencePiece.train(utf8Sentences: $0, options: spmOptions) }
            } catch let e as SentencePieceError {
                var hint = ""
                if e.message.contains("Vocabulary size") || e.message.contains("vocab_size") {
                    hint = " (the training text may be too small for --vocab-size \(o.vocabSize); try a smaller one)"
                }
                throw PreprocessError(e.message + hint)
            }
            let modelName = group.name + ".model", vocabName = group.name + ".vocab"
            if !oldManifestRemoved {
                // From the first write on, the directory no longer holds the earlier preprocessing.
                try? FileManager.default.removeItem(atPath: out(PreprocessManifest.fileName))
                oldManifestRemoved = true
            }
            try model.writeModel(to: out(modelName))
            try model.writeVocabulary(to: out(vocabName))
            outputs += [modelName, vocabName]
            for lang in group.langs {
                models[lang] = model
                modelFiles[lang] = modelName
                vocabFiles[lang] = vocabName
                trainingSentences[lang] = sample.count
            }
            step("\(modelName): \(model.vocabularySize) pieces")
        }
        samples = []  // their memory is not needed any more

        // 5. Second pass: encode, clean and write each split, a chunk of pairs at a time.
        var splitInfos: [SplitInfo] = []
        for split in o.splits {
            let lines = inputs.first { $0.split == split.name }!.lines
            let info = try encodeSplit(name: split.name, kind: split.kind, prefix: split.prefix, lines: lines,
                                       paths: paths[split.name]!, models: models, out: out)
            splitInfos.append(info)
            for lang in langs { outputs += [info.sides[lang]!.dataset] + (info.sides[lang]!.text.map { [$0] } ?? []) }
        }

        // 6. Outputs of the earlier run that this one did not rewrite (e.g. joint vs separate models).
        // Only plain names of files in the directory: an old manifest may be forged ("..", "." would remove directories).
        for name in previousOutputs where !outputs.contains(name) && !name.contains("/") && ![".", "..", PreprocessManifest.fileName].contains(name) {
            try? fm.removeItem(atPath: out(name))
        }

        // 7. Manifest last: a directory without one is an incomplete run.
        let anyModel = models[o.sourceLang]!
        let manifest = PreprocessManifest(
            format: PreprocessManifest.formatName, formatVersion: PreprocessManifest.currentFormatVersion,
            tool: "mt-preprocess (SwiftNMT \(swiftNMTVersion))", created: ISO8601DateFormatter().string(from: Date()),
            request: request,
            sentencepiece: VocabularyInfo(joint: o.joint, models: modelFiles, vocabularies: vocabFiles,
                                          vocabSizes: models.mapValues { $0.vocabularySize }, trainingSentences: trainingSentences,
                                          padId: anyModel.padId, unkId: anyModel.unkId, bosId: anyModel.bosId, eosId: anyModel.eosId),
            splits: splitInfos, outputs: outputs, seconds: Date().timeIntervalSince(start))
        do {
            try AtomicFile.write(manifest.encoded(), to: out(PreprocessManifest.fileName))
        } catch {
            throw PreprocessError("\(error)")
        }
        step("done: \(outputs.count + 1) files in \(dest)")
        return PreprocessResult(manifest: manifest, summary: Preprocessor.summary(manifest), regenerated: regenerated)
    }

    // MARK: First pass

    /// Reads `path` to the end: its lines (each given to `body`), size and checksum.
    private func scan(_ path: String, split: String, lang: String, _ body: (UnsafeRawBufferPointer) -> Void) throws -> InputInfo {
        let reader = try LineReader(path: path, blockSize: readBlockSize)
        var chunk = LineChunk()
        var meter = ProgressMeter(interval: progressInterval)
        step("reading \(path)")
        while try reader.read(maxLines: chunkLines, into: &chunk) {
            chunk.bytes.withUnsafeBytes { raw in
                for range in chunk.lines { body(UnsafeRawBufferPointer(rebasing: raw[range])) }
            }
            if let report = meter.report(done: reader.linesRead, fraction: reader.fractionRead, unit: "lines") {
                progress("reading \(split).\(lang): \(report)")
            }
        }
        return InputInfo(split: split, lang: lang, path: Preprocessor.absolutePath(path), bytes: reader.fileBytes,
                         lines: reader.linesRead, checksum: reader.checksum, compressed: reader.compressed)
    }

    // MARK: Second pass

    /// Encodes one split chunk by chunk, drops training pairs as clean-corpus-n does, and writes the token
    /// datasets (and, for valid and test, the raw text).
    ///
    /// The work is a pipeline of three stages over chunks of pairs, run together in each round on all
    /// threads: read chunk k+1, encode chunk k (cut into parts), write chunk k-1. Reading and writing are
    /// one task each, so they overlap the encoding instead of leaving cores idle.
    private func encodeSplit(name: String, kind: String, prefix: String, lines total: Int, paths: [String: String],
                             models: [String: SentencePiece], out: (String) -> String) throws -> SplitInfo {
        let o = options
        let langs = [o.sourceLang, o.targetLang]
        let readers = try langs.map { try LineReader(path: paths[$0]!, blockSize: readBlockSize) }
        let output = try SplitOutput(name: name, kind: kind, langs: langs, models: langs.map { models[$0]! },
                                     maxLength: o.maxLength, lengthRatio: o.lengthRatio, out: out)
        let sideModels = langs.map { models[$0]! }
        // Three slots of buffers (chunk k+1, k, k-1), reused round after round: slot s holds the two
        // sides' lines chunks[2s + side], their encoded parts parts[(2s + side) * partsPerSide + part],
        // and the joined ids encoded[2s + side].
        let partsPerSide = 8 * o.threads  // small parts keep both cores busy to the end of a round
        var chunks = [LineChunk](repeating: LineChunk(), count: 6)
        var parts = [EncodedLines](repeating: EncodedLines(), count: 6 * partsPerSide)
        var encoded = [EncodedLines](repeating: EncodedLines(), count: 6)
        var chunksRead = 0, chunksWritten = 0, endOfInput = false
        var meter = ProgressMeter(interval: progressInterval)
        let splitStart = Date()
        step("encoding \(name) (\(total) pairs)")

        var round = 0
        while !endOfInput || chunksWritten < chunksRead {
            let reading = endOfInput ? nil : round % 3
            let encoding = round >= 1 && round - 1 < chunksRead ? (round - 1) % 3 : nil
            let writing = round >= 2 && round - 2 < chunksRead ? (round - 2) % 3 : nil
            // Tasks: 0 reads, 1 writes, the rest encode one part of one side each.
            let encodeTasks = encoding == nil ? 0 : 2 * partsPerSide
            var failures = [Error?](repeating: nil, count: 2 + encodeTasks)
            var more = false
            chunks.withUnsafeMutableBufferPointer { chunks in
                parts.withUnsafeMutableBufferPointer { parts in
                    encoded.withUnsafeMutableBufferPointer { encoded in
                        failures.withUnsafeMutableBufferPointer { failures in
                            DispatchQueue.concurrentPerform(iterations: 2 + encodeTasks) { task in
                                do {
                                    switch task {
                                    case 0:
                                        guard let slot = reading else { return }
                                        let source = try readers[0].read(maxLines: chunkLines, into: &chunks[2 * slot])
                                        let target = try readers[1].read(maxLines: chunkLines, into: &chunks[2 * slot + 1])
                                        // The first pass found equal line counts; a file changed since is caught here.
                                        guard chunks[2 * slot].count == chunks[2 * slot + 1].count else {
                                            throw PreprocessError("'\(readers[0].path)' and '\(readers[1].path)' changed while being read (their line counts differ now)")
                                        }
                                        more = source || target
                                    case 1:
                                        guard let slot = writing else { return }
                                        for side in 0..<2 {
                                            Self.join(UnsafeMutableBufferPointer(rebasing: parts[((2 * slot + side) * partsPerSide)...].prefix(partsPerSide)),
                                                      into: &encoded[2 * slot + side])
                                        }
                                        try output.write(sources: chunks[2 * slot], targets: chunks[2 * slot + 1],
                                                         encodedSources: encoded[2 * slot], encodedTargets: encoded[2 * slot + 1])
                                    default:
                                        let slot = encoding!, side = (task - 2) / partsPerSide, part = (task - 2) % partsPerSide
                                        let chunk = chunks[2 * slot + side]
                                        let lo = chunk.count * part / partsPerSide, hi = chunk.count * (part + 1) / partsPerSide
                                        let result = (2 * slot + side) * partsPerSide + part
                                        parts[result].removeAll()
                                        try chunk.bytes.withUnsafeBytes { raw in
                                            for i in lo..<hi {
                                                try sideModels[side].encode(utf8: UnsafeRawBufferPointer(rebasing: raw[chunk.lines[i]]),
                                                                            appendingTo: &parts[result].ids)
                                                parts[result].offsets.append(parts[result].ids.count)
                                            }
                                        }
                                    }
                                } catch {
                                    failures[task] = error
                                }
                            }
                        }
                    }
                }
            }
            if let failure = failures.compactMap({ $0 }).first {
                throw failure as? PreprocessError ?? PreprocessError("cannot encode \(name): \(failure)")
            }
            if reading != nil {
                if more { chunksRead += 1 } else { endOfInput = true }
            }
            if writing != nil { chunksWritten += 1 }
            round += 1
            if let report = meter.report(done: output.pairsRead, of: total, unit: "pairs") {
                progress("encoding \(name): \(report)")
            }
        }
        let info = try output.finish(prefix: prefix)
        let seconds = Date().timeIntervalSince(splitStart)
        step(String(format: "%@: %d pairs encoded in %.1f s (%.0f pairs/s)", name, info.inputPairs, seconds,
                    Double(info.inputPairs) / max(seconds, 1e-9)))
        return info
    }

    /// Joins the encoded parts of one side of a chunk, in order.
    private static func join(_ parts: UnsafeMutableBufferPointer<EncodedLines>, into encoded: inout EncodedLines) {
        encoded.removeAll()
        for part in parts {
            let base = encoded.ids.count
            encoded.ids.append(contentsOf: part.ids)
            for k in 1..<part.offsets.count { encoded.offsets.append(base + part.offsets[k]) }
        }
    }

    /// Ids of a chunk's lines: line i is ids[offsets[i] ..< offsets[i+1]].
    struct EncodedLines {
        var ids: [Int32] = []
        var offsets: [Int] = [0]
        var count: Int { offsets.count - 1 }
        func length(_ i: Int) -> Int { offsets[i + 1] - offsets[i] }

        func withSentence<R>(_ i: Int, _ body: (UnsafeBufferPointer<Int32>) throws -> R) rethrows -> R {
            try ids.withUnsafeBufferPointer { try body(UnsafeBufferPointer(rebasing: $0[offsets[i]..<offsets[i + 1]])) }
        }

        mutating func removeAll() {
            ids.removeAll(keepingCapacity: true)
            offsets.removeAll(keepingCapacity: true)
            offsets.append(0)
        }
    }

    /// The outputs of one split and their statistics: pairs are cleaned (training only) and appended
    /// chunk by chunk.
    private final class SplitOutput {
        let name: String, kind: String, langs: [String]
        let maxLength: Int, lengthRatio: Double
        let datasets: [TokenDatasetWriter]
        /// Raw text copies (valid and test).
        let texts: [AtomicFileWriter]?
        let unknownIds: [Int32]
        var tokens = [0, 0], longest = [0, 0], unknown = [0, 0]
        var dropped = DroppedCounts(), kept = 0, pairsRead = 0

        init(name: String, kind: String, langs: [String], models: [SentencePiece], maxLength: Int, lengthRatio: Double,
             out: (String) -> String) throws {
            self.name = name
            self.kind = kind
            self.langs = langs
            self.maxLength = maxLength
            self.lengthRatio = lengthRatio
            datasets = try zip(langs, models).map { try TokenDatasetWriter(path: out("\(name).\($0).bin"), vocabSize: $1.vocabularySize) }
            texts = kind == "train" ? nil : try langs.map { lang in
                do { return try AtomicFileWriter(path: out("\(name).\(lang).txt")) } catch { throw PreprocessError("\(error)") }
            }
            unknownIds = models.map(\.unkId)
        }

        func write(sources: LineChunk, targets: LineChunk, encodedSources: EncodedLines, encodedTargets: EncodedLines) throws {
            let encoded = [encodedSources, encodedTargets]
            for i in 0..<encodedSources.count {
                let ls = encodedSources.length(i), lt = encodedTargets.length(i)
                if kind == "train" {
                    if ls == 0 || lt == 0 { dropped.empty += 1; continue }
                    if ls > maxLength || lt > maxLength { dropped.tooLong += 1; continue }
                    if Double(ls) / Double(lt) > lengthRatio || Double(lt) / Double(ls) > lengthRatio {
                        dropped.lengthRatio += 1
                        continue
                    }
                }
                kept += 1
                for side in 0..<2 {
                    try encoded[side].withSentence(i) { sentence in
                        try datasets[side].append(sentence)
                        tokens[side] += sentence.count
                        longest[side] = max(longest[side], sentence.count)
                        for id in sentence where id == unknownIds[side] { unknown[side] += 1 }
                    }
                }
            }
            if let texts {
                for (side, chunk) in [sources, targets].enumerated() {
                    for i in 0..<chunk.count {
                        try chunk.withLine(i) { line in
                            do {
                                try texts[side].write(line)
                                try texts[side].write(UInt8(0x0A))
                            } catch { throw PreprocessError("\(error)") }
                        }
                    }
                }
            }
            pairsRead += encodedSources.count
        }

        /// Writes the files and describes the split.
        func finish(prefix: String) throws -> SplitInfo {
            if kind == "train" && kept == 0 {
                throw PreprocessError("no training pairs left after cleaning (\(dropped.empty) with an empty side, \(dropped.tooLong) longer than \(maxLength) subwords, \(dropped.lengthRatio) beyond length ratio \(lengthRatio))")
            }
            var sides: [String: SideInfo] = [:]
            for side in 0..<2 {
                try datasets[side].finish()
                var textName: String?
                if let texts {
                    do { try texts[side].commit() } catch { throw PreprocessError("\(error)") }
                    textName = "\(name).\(langs[side]).txt"
                }
                sides[langs[side]] = SideInfo(dataset: "\(name).\(langs[side]).bin", text: textName, tokens: tokens[side],
                                              averageLength: kept > 0 ? Double(tokens[side]) / Double(kept) : 0, maxLength: longest[side],
                                              unknownTokens: unknown[side],
                                              unknownRate: tokens[side] > 0 ? Double(unknown[side]) / Double(tokens[side]) : 0)
            }
            return SplitInfo(name: name, kind: kind, prefix: prefix, inputPairs: pairsRead, pairs: kept,
                             dropped: kind == "train" ? dropped : nil, sides: sides)
        }
    }

    // MARK: Destination

    /// Creates the destination or checks that it may be written. Returns whether it already held
    /// the same preprocessing, and the outputs listed by the earlier run's manifest (if any).
    private func prepareDestination(for request: PreprocessRequest) throws -> (same: Bool, previousOutputs: [String]) {
        let fm = FileManager.default
        let dest = options.destDir
        var isDir: ObjCBool = false
        if !fm.fileExists(atPath: dest, isDirectory: &isDir) {
            do { try fm.createDirectory(atPath: dest, withIntermediateDirectories: true) } catch {
                throw PreprocessError("cannot create destination directory '\(dest)': \(error.localizedDescription)")
            }
            return (false, [])
        }
        guard isDir.boolValue else { throw PreprocessError("destination '\(dest)' exists and is not a directory") }
        let entries = (try? fm.contentsOfDirectory(atPath: dest)) ?? []
        if entries.isEmpty { return (false, []) }
        let manifestPath = (dest as NSString).appendingPathComponent(PreprocessManifest.fileName)
        var old: PreprocessManifest?
        if fm.fileExists(atPath: manifestPath) {
            old = try? PreprocessManifest.load(directory: dest)
        }
        var same = false
        if let old {
            same = old.request == request
            if !same && !options.force {
                let diff = request.differences(from: old.request)
                throw PreprocessError("destination '\(dest)' already holds a different preprocessing (\(diff.joined(separator: "; "))); use --force to replace it")
            }
        } else if !options.force {
            throw PreprocessError("destination '\(dest)' is not empty and has no valid \(PreprocessManifest.fileName) from mt-preprocess; use --force to write into it anyway")
        }
        progress(same ? "destination holds the same preprocessing; regenerating it" : "replacing the contents of \(dest) (--force)")
        return (same, old?.outputs ?? [])
    }

    static func absolutePath(_ path: String) -> String {
        let url = URL(fileURLWithPath: path)
        return url.standardizedFileURL.path
    }

    // MARK: Summary

    /// The statistics table printed by mt-preprocess.
    static func summary(_ m: PreprocessManifest) -> String {
        let r = m.request
        let langs = [r.sourceLang, r.targetLang]
        var lines: [String] = []
        let vocab = m.sentencepiece.joint
            ? "joint \(r.modelType) model \(m.sentencepiece.models[r.sourceLang]!) (\(m.sentencepiece.vocabSizes[r.sourceLang]!) pieces)"
            : langs.map { "\($0): \(r.modelType) model \(m.sentencepiece.models[$0]!) (\(m.sentencepiece.vocabSizes[$0]!) pieces)" }.joined(separator: ", ")
        lines.append("\(r.sourceLang)-\(r.targetLang): \(vocab)")
        func pad(_ s: String, _ w: Int, left: Bool = false) -> String {
            let p = String(repeating: " ", count: max(0, w - s.count))
            return left ? s + p : p + s
        }
        lines.append(pad("split", 8, left: true) + pad("lang", 6, left: true) + pad("sentences", 10) + pad("tokens", 11)
                     + pad("avg len", 9) + pad("max len", 9) + pad("unk rate", 10))
        for s in m.splits {
            for lang in langs {
                guard let side = s.sides[lang] else { continue }
                lines.append(pad(s.name, 8, left: true) + pad(lang, 6, left: true) + pad(String(s.pairs), 10)
                             + pad(String(side.tokens), 11) + pad(String(format: "%.2f", side.averageLength), 9)
                             + pad(String(side.maxLength), 9) + pad(String(format: "%.4f%%", side.unknownRate * 100), 10))
            }
        }
        for s in m.splits {
            if let d = s.dropped {
                lines.append("\(s.name): \(s.inputPairs) pairs read, \(s.pairs) kept, \(d.total) dropped (\(d.empty) with an empty side, \(d.tooLong) longer than \(r.maxLength) subwords, \(d.lengthRatio) with length ratio above \(formatNumber(r.lengthRatio)))")
            }
        }
        for s in m.splits where s.kind == "valid" {
            let rates = langs.compactMap { l in s.sides[l].map { "\(l) \(String(format: "%.4f%%", $0.unknownRate * 100)) (\($0.unknownTokens) of \($0.tokens))" } }
            lines.append("\(s.name): unknown-piece rate \(rates.joined(separator: ", "))")
        }
        lines.append(String(format: "wrote %d files in %.2f s", m.outputs.count + 1, m.seconds))
        return lines.joined(separator: "\n")
    }

    static func formatNumber(_ x: Double) -> String {
        x == x.rounded() && abs(x) < 1e15 ? String(Int(x)) : String(x)
    }
}
