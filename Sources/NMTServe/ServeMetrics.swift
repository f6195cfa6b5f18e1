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
        sentences = registry.makeCounter(descriptor: Self.name("sentences", unit: "total", "Sentences translated."))
        queueDepth = registry.makeGauge(descriptor: Self.name("queue_depth", unit: "", "Sentences waiting to join a batch."))
        batchSentences = registry.makeValueHistogram(descriptor: Self.name("batch", unit: "sentences", "Sentences in a worker's batch at each decoder step."),
                                                     buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256])
        latency = registry.makeDurationHistogram(
            descriptor: Self.name("request_duration", unit: "seconds", "Time from a translation request's arrival to its answer."),
            buckets: [.milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250),
                      .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5), .seconds(10), .seconds(30)])
    }

    /// Counts a request to `route` answered with `status`.
    func request(route: String, status: Int) {
        registry.makeCounter(descriptor: Self.name("requests", unit: "total", "HTTP requests by route and status."),
                             labels: [("route", route), ("status", String(status))]).increment()
    }

    private static func name(_ metric: String, unit: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "mt_serve", metricName: metric, unitName: unit, helpText: help)
    }

    var text: String { registry.emitToString() }
}

extension ValueHistogram {
    func record(_ value: Int) { record(Double(value)) }
}
