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
                inputSentenceSize: Int = 2_000_000,
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
public final class Preprocessor {
    let options: PreprocessOptions
    /// Progress messages (mt-preprocess sends them to stderr).
    var log: (String) -> Void

    public init(options: PreprocessOptions, log: @escaping (String) -> Void = { _ in }) {
        self.options = options
        self.log = log
    }

    private var start = Date()

    private func progress(_ message: String) {
        log(String(format: "[%6.2fs] ", Date().timeIntervalSince(start)) + message)
    }

    // MARK: Run

    public func run() throws -> PreprocessResult {
        start = Date()
        try options.validate()
        let o = options
        let langs = [o.sourceLang, o.targetLang]
        let fm = FileManager.default

        // 1. Inputs: all must exist before anything is read; then read, validate and pair them.
        var paths: [String: [String: String]] = [:]  // split -> lang -> path
        var missing: [String] = []
        for split in o.splits {
            for lang in langs {
                let p = split.prefix + "." + lang
                if fm.fileExists(atPath: p) { paths[split.name, default: [:]][lang] = p }
                else if fm.fileExists(atPath: p + ".gz") { paths[split.name, default: [:]][lang] = p + ".gz" }
                else { missing.append("'\(p)'") }
            }
        }
        if !missing.isEmpty {
            throw PreprocessError("missing input file\(missing.count > 1 ? "s" : "") \(missing.joined(separator: ", ")) (also looked for .gz)")
        }
        var files: [String: [String: TextFile]] = [:]
        for split in o.splits {
            for lang in langs {
                let path = paths[split.name]![lang]!
                progress("reading \(path)")
                files[split.name, default: [:]][lang] = try TextFile.read(resolving: path)
            }
            let s = files[split.name]![o.sourceLang]!, t = files[split.name]![o.targetLang]!
            if s.lineCount != t.lineCount {
                throw PreprocessError("source and target of \(split.name) have different line counts: '\(s.path)' has \(s.lineCount) lines, '\(t.path)' has \(t.lineCount) lines")
            }
        }
        let train = files["train"]!
        guard train[o.sourceLang]!.lineCount > 0 else {
            throw PreprocessError("the training data is empty ('\(train[o.sourceLang]!.path)' has no lines)")
        }

        var inputs: [InputInfo] = []
        for split in o.splits {
            for lang in langs {
                let f = files[split.name]![lang]!
                inputs.append(InputInfo(split: split.name, lang: lang, path: Preprocessor.absolutePath(f.path), bytes: f.fileBytes,
                                        lines: f.lineCount, checksum: f.checksum, compressed: f.compressed))
            }
        }
        let request = PreprocessRequest(sourceLang: o.sourceLang, targetLang: o.targetLang, vocabSize: o.vocabSize,
                                        modelType: o.modelType.rawValue, joint: o.joint, characterCoverage: o.characterCoverage,
                                        maxLength: o.maxLength, lengthRatio: o.lengthRatio,
                                        inputSentenceSize: o.inputSentenceSize, inputs: inputs)

        // 2. Destination.
        let (regenerated, previousOutputs) = try prepareDestination(for: request)
        var oldManifestRemoved = false
        let dest = o.destDir
        func out(_ name: String) -> String { (dest as NSString).appendingPathComponent(name) }
        var outputs: [String] = []

        // 3. SentencePiece.
        var spmOptions = SentencePieceTrainingOptions(vocabSize: o.vocabSize, modelType: o.modelType,
                                                      characterCoverage: o.characterCoverage,
                                                      inputSentenceSize: o.inputSentenceSize, numThreads: o.threads)
        spmOptions.shuffleInputSentence = true
        var models: [String: SentencePiece] = [:]
        var modelFiles: [String: String] = [:], vocabFiles: [String: String] = [:]
        var trainingSentences: [String: Int] = [:]
        let groups: [(name: String, langs: [String])] = o.joint ? [("spm", langs)] : langs.map { ("spm.\($0)", [$0]) }
        for group in groups {
            let sources = group.langs.map { train[$0]! }
            let count = sources.reduce(0) { $0 + $1.lines.count(where: { !$0.isEmpty }) }
            progress("training SentencePiece \(o.modelType.rawValue) model \(group.name).model (vocabulary \(o.vocabSize)) on \(count) sentences (\(group.langs.joined(separator: "+")))")
            let model: SentencePiece
            do {
                model = try Preprocessor.withSentences(sources) { try SentencePiece.train(utf8Sentences: $0, options: spmOptions) }
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
                trainingSentences[lang] = min(count, o.inputSentenceSize > 0 ? o.inputSentenceSize : count)
            }
            progress("\(modelName): \(model.vocabularySize) pieces")
        }

        // 4. Encode, clean, write.
        var splitInfos: [SplitInfo] = []
        for split in o.splits {
            let pair = files[split.name]!
            var encoded: [String: EncodedLines] = [:]
            for lang in langs {
                let f = pair[lang]!
                progress("encoding \(split.name).\(lang) (\(f.lineCount) lines)")
                encoded[lang] = try encode(f, with: models[lang]!, label: "\(split.name).\(lang)")
            }
            let n = pair[o.sourceLang]!.lineCount
            var keep = [Bool](repeating: true, count: n)
            var dropped: DroppedCounts?
            if split.kind == "train" {
                var d = DroppedCounts()
                let s = encoded[o.sourceLang]!, t = encoded[o.targetLang]!
                for i in 0..<n {
                    let ls = s.length(i), lt = t.length(i)
                    if ls == 0 || lt == 0 { d.empty += 1; keep[i] = false }
                    else if ls > o.maxLength || lt > o.maxLength { d.tooLong += 1; keep[i] = false }
                    else if Double(ls) / Double(lt) > o.lengthRatio || Double(lt) / Double(ls) > o.lengthRatio {
                        d.lengthRatio += 1; keep[i] = false
                    }
                }
                dropped = d
                if d.total == n {
                    throw PreprocessError("no training pairs left after cleaning (\(d.empty) with an empty side, \(d.tooLong) longer than \(o.maxLength) subwords, \(d.lengthRatio) beyond length ratio \(o.lengthRatio))")
                }
            }
            let kept = keep.lazy.filter { $0 }.count
            var sides: [String: SideInfo] = [:]
            for lang in langs {
                let e = encoded[lang]!
                let model = models[lang]!
                let name = "\(split.name).\(lang).bin"
                let writer = try TokenDatasetWriter(path: out(name), vocabSize: model.vocabularySize)
                var tokens = 0, maxLen = 0, unk = 0
                let unkId = model.unkId
                try e.ids.withUnsafeBufferPointer { ids in
                    for i in 0..<n where keep[i] {
                        let sentence = UnsafeBufferPointer(rebasing: ids[e.offsets[i]..<e.offsets[i + 1]])
                        try writer.append(sentence)
                        tokens += sentence.count
                        maxLen = max(maxLen, sentence.count)
                        for id in sentence where id == unkId { unk += 1 }
                    }
                }
                try writer.finish()
                outputs.append(name)
                var textName: String?
                if split.kind != "train" {
                    let t = "\(split.name).\(lang).txt"
                    try Preprocessor.writeLines(pair[lang]!, to: out(t))
                    outputs.append(t)
                    textName = t
                }
                sides[lang] = SideInfo(dataset: name, text: textName, tokens: tokens,
                                       averageLength: kept > 0 ? Double(tokens) / Double(kept) : 0, maxLength: maxLen,
                                       unknownTokens: unk, unknownRate: tokens > 0 ? Double(unk) / Double(tokens) : 0)
            }
            splitInfos.append(SplitInfo(name: split.name, kind: split.kind, prefix: split.prefix, inputPairs: n,
                                        pairs: kept, dropped: dropped, sides: sides))
        }

        // 5. Outputs of the earlier run that this one did not rewrite (e.g. joint vs separate models).
        // Only plain names of files in the directory: an old manifest may be forged ("..", "." would remove directories).
        for name in previousOutputs where !outputs.contains(name) && !name.contains("/") && ![".", "..", PreprocessManifest.fileName].contains(name) {
            try? fm.removeItem(atPath: out(name))
        }

        // 6. Manifest last: a directory without one is an incomplete run.
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
            try manifest.encoded().write(to: URL(fileURLWithPath: out(PreprocessManifest.fileName)), options: .atomic)
        } catch {
            throw PreprocessError("cannot write '\(out(PreprocessManifest.fileName))': \(error.localizedDescription)")
        }
        progress("done: \(outputs.count + 1) files in \(dest)")
        return PreprocessResult(manifest: manifest, summary: Preprocessor.summary(manifest), regenerated: regenerated)
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

    // MARK: Encoding

    /// Ids of all lines of a file: line i is ids[offsets[i] ..< offsets[i+1]].
    struct EncodedLines {
        var ids: [Int32] = []
        var offsets: [Int] = [0]
        func length(_ i: Int) -> Int { offsets[i + 1] - offsets[i] }
    }

    private func encode(_ file: TextFile, with model: SentencePiece, label: String) throws -> EncodedLines {
        let n = file.lineCount
        let chunkSize = 8192
        let chunks = (n + chunkSize - 1) / chunkSize
        if chunks == 0 { return EncodedLines() }
        var results = [EncodedLines](repeating: EncodedLines(), count: chunks)
        var failure: Error?
        var done = 0
        let lock = NSLock()
        let reportEvery = max(1, 100_000 / chunkSize)
        let workers = min(options.threads, chunks)
        file.bytes.withUnsafeBytes { raw in
            results.withUnsafeMutableBufferPointer { res in
                // Workers take chunks round-robin; results land in their own slots.
                DispatchQueue.concurrentPerform(iterations: workers) { w in
                    var c = w
                    while c < chunks {
                        var e = EncodedLines()
                        let lo = c * chunkSize, hi = min(n, lo + chunkSize)
                        e.ids.reserveCapacity((file.lines[hi - 1].upperBound - file.lines[lo].lowerBound) / 3 + 16)
                        e.offsets.reserveCapacity(hi - lo + 1)
                        do {
                            for i in lo..<hi {
                                try model.encode(utf8: UnsafeRawBufferPointer(rebasing: raw[file.lines[i]]), appendingTo: &e.ids)
                                e.offsets.append(e.ids.count)
                            }
                        } catch {
                            lock.lock(); failure = failure ?? error; lock.unlock()
                            return
                        }
                        res[c] = e
                        lock.lock()
                        done += 1
                        if n > 200_000, done % reportEvery == 0 { progress("  \(label): \(min(n, done * chunkSize))/\(n) lines") }
                        lock.unlock()
                        c += workers
                    }
                }
            }
        }
        if let failure { throw PreprocessError("cannot encode \(label): \(failure)") }
        if chunks == 1 { return results[0] }
        var all = EncodedLines()
        all.ids.reserveCapacity(results.reduce(0) { $0 + $1.ids.count })
        all.offsets.reserveCapacity(n + 1)
        for r in results {
            let base = all.ids.count
            all.ids.append(contentsOf: r.ids)
            for k in 1..<r.offsets.count { all.offsets.append(base + r.offsets[k]) }
        }
        return all
    }

    /// Calls `body` with the non-empty lines of `files` as byte buffers.
    private static func withSentences<R>(_ files: [TextFile], _ body: ([UnsafeRawBufferPointer]) throws -> R) rethrows -> R {
        func go(_ k: Int, _ acc: [UnsafeRawBufferPointer]) throws -> R {
            if k == files.count { return try body(acc) }
            return try files[k].bytes.withUnsafeBytes { raw in
                var next = acc
                next.reserveCapacity(acc.count + files[k].lines.count)
                for r in files[k].lines where !r.isEmpty { next.append(UnsafeRawBufferPointer(rebasing: raw[r])) }
                return try go(k + 1, next)
            }
        }
        return try go(0, [])
    }

    private static func writeLines(_ file: TextFile, to path: String) throws {
        var data = Data()
        data.reserveCapacity(file.bytes.count + file.lineCount)
        file.bytes.withUnsafeBytes { raw in
            for r in file.lines {
                data.append(contentsOf: UnsafeRawBufferPointer(rebasing: raw[r]))
                data.append(0x0A)
            }
        }
        do { try data.write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
            throw PreprocessError("cannot write '\(path)': \(error.localizedDescription)")
        }
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
