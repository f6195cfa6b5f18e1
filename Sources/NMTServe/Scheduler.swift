import Foundation
import NMTSearch
import NMTTensor

/// The decoding side of one served model: in-flight batching. Sentences from every request wait in one
/// queue; each worker thread owns a `SearchBatch` and, between two decoder steps, drops the sentences
/// whose requests went away and lets waiting sentences join, up to `maxBatchSentences` and
/// `maxBatchPositions`. A long sentence does not hold short ones back, and a lone request starts at once.
/// What a sentence finds depends only on the sentence and its options, never on what shares its batch
/// (`SearchBatch`), so a request gets what mt-translate gives for the same lines.
///
/// Workers run on threads of their own (decoding blocks), each with one BLAS thread: as in mt-translate,
/// running the batches' element-wise work in parallel is worth more than BLAS threads on one batch.
package final class Scheduler: @unchecked Sendable {
    package struct Limits: Sendable {
        /// Sentences decoded together by one worker.
        package var maxBatchSentences = 64
        /// Hypothesis rows × the longest source of a worker's batch: its memory (as mt-translate's batches).
        package var maxBatchPositions = 16_384
        /// Sentences waiting, beyond which requests are refused (`Scheduler.Busy`).
        package var maxQueue = 1_024

        package init(maxBatchSentences: Int = 64, maxBatchPositions: Int = 16_384, maxQueue: Int = 1_024) {
            self.maxBatchSentences = maxBatchSentences
            self.maxBatchPositions = maxBatchPositions
            self.maxQueue = maxQueue
        }
    }

    /// The queue is full: try again later.
    package struct Busy: Error {}

    /// One request's sentences, answered together.
    private final class Request {
        var results: [[Hypothesis]]
        var remaining: Int
        var continuation: CheckedContinuation<[[Hypothesis]], Error>?

        init(count: Int) {
            results = [[Hypothesis]](repeating: [], count: count)
            remaining = count
        }
    }

    /// A sentence waiting or being decoded: its request and its place there.
    private struct Sentence {
        let request: Request
        let index: Int
        let source: [Int32]
        let options: BeamSearchOptions
    }

    let limits: Limits
    private let metrics: ServeMetrics?
    private let condition = NSCondition()
    // Under `condition`:
    private var waiting: [Int: Sentence] = [:]
    private var waitingOrder = TagQueue()
    /// Sentences in a batch, and the worker whose batch.
    private var decoding: [Int: (sentence: Sentence, worker: Int)] = [:]
    /// Per worker, its sentences whose requests went away.
    private var cancelled: [Set<Int>] = []
    /// Per worker, the sentences in its batch.
    private var held: [Int] = []
    private var nextTag = 0
    private var stopping = false
    private var running = 0
    private var threads: [Thread] = []

    /// Starts `workers` threads over the translator's model(s).
    package init(translator: Translator, workers: Int, limits: Limits, metrics: ServeMetrics? = nil) {
        self.limits = limits
        self.metrics = metrics
        BLAS.threads = 1
        running = workers
        cancelled = [Set<Int>](repeating: [], count: workers)
        held = [Int](repeating: 0, count: workers)
        for worker in 0..<workers {
            let batch = translator.makeSearchBatch()
            let thread = Thread { [unowned self] in self.work(batch, worker: worker) }
            thread.name = "mt-serve decoder \(worker)"
            thread.stackSize = 8 << 20
            threads.append(thread)
        }
        for thread in threads { thread.start() }
    }

    /// Sentences waiting to join a batch.
    package var queueDepth: Int { condition.withLock { waitingOrder.count } }

    /// Sentences waiting or in a batch (those whose requests went away leave at their worker's next step).
    package var activeSentences: Int { condition.withLock { waitingOrder.count + decoding.count } }

    /// Searches `sources` (not empty, none empty) and returns their n-best lists in order. Throws `Busy`
    /// at once when the queue has no room for them all, and CancellationError when the task is cancelled
    /// (its sentences then leave the queue or their batch).
    package func search(_ sources: [[Int32]], options: BeamSearchOptions) async throws -> [[Hypothesis]] {
        precondition(!sources.isEmpty && sources.allSatisfy { !$0.isEmpty })
        let request = Request(count: sources.count)
        let tags: [Int] = try condition.withLock {
            guard !stopping, waitingOrder.count + sources.count <= limits.maxQueue else { throw Busy() }
            let first = nextTag
            nextTag += sources.count
            for (index, source) in sources.enumerated() {
                waiting[first + index] = Sentence(request: request, index: index, source: source, options: options)
                waitingOrder.append(first + index)
            }
            metrics?.queueDepth.set(Double(waitingOrder.count))
            return Array(first..<first + sources.count)
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                condition.withLock {
                    if request.remaining == 0 {
                        continuation.resume(returning: request.results)
                    } else if Task.isCancelled {
                        continuation.resume(throwing: CancellationError())
                    } else {
                        request.continuation = continuation
                        condition.broadcast()
                    }
                }
            }
        } onCancel: {
            cancel(tags, of: request)
        }
    }

    /// The request's sentences leave: waiting ones at once, decoding ones at their worker's next step.
    private func cancel(_ tags: [Int], of request: Request) {
        condition.withLock {
            for tag in tags {
                if waiting.removeValue(forKey: tag) != nil { continue }
                if let worker = decoding[tag]?.worker { cancelled[worker].insert(tag) }
            }
            waitingOrder.removeAll { waiting[$0] == nil }
            metrics?.queueDepth.set(Double(waitingOrder.count))
            request.remaining = -1
            request.continuation?.resume(throwing: CancellationError())
            request.continuation = nil
            condition.broadcast()
        }
    }

    /// Stops taking sentences; the workers finish what they hold and what waits, then end.
    package func shutdown() {
        condition.withLock {
            stopping = true
            condition.broadcast()
        }
    }

    /// Waits until every worker has ended (after `shutdown`).
    package func waitUntilStopped() {
        condition.withLock { while running > 0 { condition.wait() } }
    }

    private func work(_ batch: SearchBatch, worker: Int) {
        var admitted: [SearchBatch.Request] = []
        var leaving = Set<Int>()
        while true {
            admitted.removeAll(keepingCapacity: true)
            leaving.removeAll(keepingCapacity: true)
            condition.lock()
            while waitingOrder.isEmpty && batch.live == 0 && cancelled[worker].isEmpty && !stopping { condition.wait() }
            if stopping && waitingOrder.isEmpty && batch.live == 0 {
                running -= 1
                condition.broadcast()
                condition.unlock()
                return
            }
            if !cancelled[worker].isEmpty {
                for tag in cancelled[worker] {
                    leaving.insert(tag)
                    decoding[tag] = nil
                }
                cancelled[worker].removeAll()
            }
            var sentences = batch.live - leaving.count, rows = batch.rows, longest = batch.sourceSteps
            held[worker] = sentences
            let share = (waitingOrder.count + held.reduce(0, +) + held.count - 1) / held.count
            while let tag = waitingOrder.first, sentences < min(limits.maxBatchSentences, max(share, 1)) {
                let sentence = waiting[tag]!
                let k = max(1, sentence.options.beamSize)
                let positions = (rows + k) * max(longest, sentence.source.count)
                if positions > limits.maxBatchPositions && sentences > 0 { break }
                waitingOrder.removeFirst()
                waiting[tag] = nil
                decoding[tag] = (sentence, worker)
                admitted.append(SearchBatch.Request(tag: tag, source: sentence.source, options: sentence.options))
                sentences += 1
                rows += k
                longest = max(longest, sentence.source.count)
            }
            if !admitted.isEmpty { metrics?.queueDepth.set(Double(waitingOrder.count)) }
            held[worker] = sentences
            condition.unlock()

            if !leaving.isEmpty { batch.remove(tags: leaving) }
            batch.admit(admitted)
            guard batch.live > 0 else { continue }
            metrics?.batchSentences.record(batch.live)
            let finished = batch.step()
            guard !finished.isEmpty else { continue }
            condition.withLock {
                held[worker] = batch.live
                for (tag, hypotheses) in finished {
                    guard let sentence = decoding.removeValue(forKey: tag)?.sentence else { continue }
                    cancelled[worker].remove(tag)
                    let request = sentence.request
                    guard request.remaining > 0 else { continue }
                    request.results[sentence.index] = hypotheses
                    request.remaining -= 1
                    if request.remaining == 0, let continuation = request.continuation {
                        request.continuation = nil
                        continuation.resume(returning: request.results)
                    }
                }
            }
        }
    }
}

/// Tags in arrival order. Taking the first is O(1) (a head index into the storage, which is compacted
/// once more than half of it has been taken), so admitting from a long queue costs no shifting.
private struct TagQueue {
    private var storage: [Int] = []
    private var head = 0

    var count: Int { storage.count - head }
    var isEmpty: Bool { head == storage.count }
    var first: Int? { isEmpty ? nil : storage[head] }

    mutating func append(_ tag: Int) { storage.append(tag) }

    mutating func removeFirst() {
        precondition(!isEmpty)
        head += 1
        if head >= 64 && 2 * head >= storage.count {
            storage.removeFirst(head)
            head = 0
        }
    }

    mutating func removeAll(where shouldRemove: (Int) -> Bool) {
        storage.removeFirst(head)
        head = 0
        storage.removeAll(where: shouldRemove)
    }
}
