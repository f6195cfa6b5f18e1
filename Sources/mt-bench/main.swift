import ArgumentParser
import Foundation
import NMTTraining
import NMTTensor
import NMTModel
import NMTCommandLine
import NMTDistributed

/// Prints SwiftNMT's speed figures; `scripts/bench.sh` runs it on a release build.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mt-bench",
        abstract: "Measure sgemm throughput and the reference model's training speed.",
        discussion: "FLOP utilization = the model's analytically counted FLOPs per second ÷ the sgemm rate measured in the same run.")

    /// BLAS threads.
    @OptionGroup var threads: ThreadsOption

    /// Bounds that keep a measurement within minutes and within memory (an sgemm of size n holds 3n²
    /// floats: 768 MiB at 8192); below 64 an sgemm is too quick to time.
    static let maxBatches = 1000, sgemmSizes = 64...8192

    @Option(help: "Timed training batches of 64 sentence pairs (1 to \(Self.maxBatches)).")
    var batches: Int = 30

    @Option(help: ArgumentHelp("Time training on the first batches of this mt-preprocess directory instead of synthetic batches.", valueName: "DIR"))
    var data: String?

    @Option(help: "Square size of the sgemm measurement (\(Self.sgemmSizes.lowerBound) to \(Self.sgemmSizes.upperBound)).")
    var sgemmSize: Int = 2048

    @Flag(help: "Also time training with bf16 products (mixed precision), in the same run, when the CPU has bf16 instructions.")
    var bf16 = false

    @Flag(help: "Only time the decoder's matrix products (one step over 80 hypotheses, one thread) in f32, bf16 and int8, in GFLOP/s.")
    var products = false

    @Flag(help: "End with one JSON object on the last line.")
    var json = false

    @Option(help: ArgumentHelp("Under mpirun: only time the all-reduce of N floats (the gradients' size), and the reduce-scatter and all-gather that mt-train does instead, 30 times each, and print ms per update.", valueName: "N"))
    var allReduce: Int?

    func validate() throws {
        guard (1...Self.maxBatches).contains(batches) else { throw ValidationError("--batches must be from 1 to \(Self.maxBatches)") }
        guard Self.sgemmSizes.contains(sgemmSize) else {
            throw ValidationError("--sgemm-size must be from \(Self.sgemmSizes.lowerBound) to \(Self.sgemmSizes.upperBound)")
        }
    }

    func run() throws {
        try Failure.reported(by: "mt-bench", measure)
    }

    func measure() throws {
        if let allReduce {
            let processes = ProcessGroup.world
            let values = UnsafeMutablePointer<Float>.allocate(capacity: allReduce)
            values.initialize(repeating: 1, count: allReduce)
            let part = UnsafeMutablePointer<Float>.allocate(capacity: max(1, processes.part(of: allReduce).count))
            func milliseconds(_ body: () -> Void) -> Double {
                body()  // the first one sets up the connections
                let started = Date()
                for _ in 0..<30 { body() }
                return Date().timeIntervalSince(started) / 30 * 1000
            }
            let allReduceMs = milliseconds { processes.sum(values, count: allReduce) }
            // What mt-train does under mpirun: each process receives its part's sums, then gives its part to all.
            let exchangeMs = processes.canSplit(allReduce) ? milliseconds {
                processes.sumIntoPart(values, count: allReduce, part: part)
                processes.gatherParts(values, count: allReduce)
            } : allReduceMs
            if processes.isLeader {
                print(String(format: "all-reduce of %d floats over %d processes: %.2f ms; reduce-scatter and all-gather (as mt-train): %.2f ms",
                             allReduce, processes.size, allReduceMs, exchangeMs))
                if json {
                    print("{\"allreduce_floats\": \(allReduce), \"processes\": \(processes.size), \"allreduce_ms\": \(allReduceMs), "
                          + "\"reduce_scatter_all_gather_ms\": \(exchangeMs)}")
                }
            }
            values.deallocate()
            part.deallocate()
            processes.finalize()
            return
        }
        BLAS.threads = threads.count
        if products {
            var object: [String: Any] = ["cpu_isa": CPUFeatures.benchmarkClass, "onednn_isa": CPUFeatures.isaName]
            for (precision, rate) in try Benchmarks.decoderProductRates() {
                print("decoder products, \(precision), 1 thread: " + (rate.map { String(format: "%.1f GFLOP/s", $0) } ?? "not on this CPU"))
                if let rate { object["products_gflops_\(precision)"] = rate }
            }
            if json { print(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)) }
            return
        }
        let sgemm = Benchmarks.sgemmGFlops(size: sgemmSize)
        print(String(format: "sgemm %dx%dx%d, %d threads: %.1f GFLOP/s", sgemmSize, sgemmSize, sgemmSize, threads.count, sgemm))
        var config = ModelConfig.reference()
        var real: [Batch]?
        if let data { (config, real) = try Benchmarks.realBatches(dataDirectory: data, batchSize: 64, batches: batches) }
        let training = try Benchmarks.training(config: config, batches: batches, data: real)
        let utilization = training.gflops / sgemm
        let source = data.map { "batches of 64 from \($0)" } ?? "synthetic batches of 64, lengths 10-20"
        print(String(format: "training (reference model, %@): %.0f target tokens/s, %.1f GFLOP/s, %.3f s/batch, %.0f tokens/batch",
                     source, training.tokensPerSecond, training.gflops, training.secondsPerBatch, training.tokensPerBatch))
        print(String(format: "FLOP utilization: %.1f%% of sgemm", utilization * 100))
        var bf16Figures: [String: Any] = [:]
        if bf16 && !CPUFeatures.hasBF16 {
            print("training with bf16 products: skipped, this CPU (\(CPUFeatures.isaName)) has no bf16 instructions")
        } else if bf16 {
            let mixed = try Benchmarks.training(config: config, batches: batches, data: real, precision: .bf16)
            print(String(format: "training with bf16 products: %.0f target tokens/s, %.2fx f32", mixed.tokensPerSecond,
                         mixed.tokensPerSecond / training.tokensPerSecond))
            bf16Figures = ["train_tokens_per_second_bf16": mixed.tokensPerSecond,
                           "train_bf16_over_f32": mixed.tokensPerSecond / training.tokensPerSecond]
        }
        if json {
            var object: [String: Any] = [
                "threads": threads.count, "sgemm_gflops": sgemm, "train_tokens_per_second": training.tokensPerSecond,
                "train_gflops": training.gflops, "flop_utilization": utilization,
                "train_data": data ?? "synthetic", "train_peak_memory_mib": PeakMemory.megabytes(),
                "cpu_isa": CPUFeatures.benchmarkClass,
            ]
            object.merge(bf16Figures) { $1 }
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        }
    }
}
Bench.main()
