import Prometheus

/// What `GET /metrics` shows, in Prometheus's text format: requests by route and status, sentences,
/// the queue's depth, the sentences of each decoder step's batch, and request latency.
package final class ServeMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    let sentences: Counter
    let queueDepth: Gauge
    let batchSentences: ValueHistogram
    let latency: DurationHistogram

    package init() {
        sentences = registry.makeCounter(name: "mt_serve_sentences_total", help: "Sentences translated.")
        queueDepth = registry.makeGauge(name: "mt_serve_queue_depth", help: "Sentences waiting to join a batch.")
        batchSentences = registry.makeValueHistogram(name: "mt_serve_batch_sentences", buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
                                                     help: "Sentences in a worker's batch at each decoder step.")
        latency = registry.makeDurationHistogram(
            name: "mt_serve_request_duration_seconds",
            buckets: [.milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250),
                      .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5), .seconds(10), .seconds(30)],
            help: "Time from a translation request's arrival to its answer.")
    }

    /// Counts a request to `route` answered with `status`.
    func request(route: String, status: Int) {
        registry.makeCounter(name: "mt_serve_requests_total", labels: [("route", route), ("status", String(status))],
                             help: "HTTP requests by route and status.").increment()
    }

    var text: String { registry.emitToString() }
}

extension ValueHistogram {
    func record(_ value: Int) { record(Double(value)) }
}
