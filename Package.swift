// swift-tools-version:6.0
import PackageDescription

// The targets are the architecture (docs/architecture.md): each floor imports only the floors below it.
//
//   NMTVersion                                    the version string everything writes
//   NMTMetrics      ← NMTVersion                  BLEU and chrF; knows nothing of the model
//   NMTTensor       ← CBLAS, CKernels,            buffers, matrix products (f32 through OpenBLAS; bf16 and int8
//                     CLowPrecision               through oneDNN), flat parameters, safetensors, atomic files
//   NMTText         ← NMTTensor, CSentencePiece   SentencePiece, preprocessing, token datasets
//   NMTModel        ← NMTTensor, CKernels         layers with forward and backward, the encoder-decoder,
//                                                 incremental decoding and the interface search uses
//   NMTModelFiles   ← NMTModel, NMTText           the one owner of a model directory
//   NMTSearch       ← NMTModelFiles               beam search, the translator, stdin
//   NMTTraining     ← NMTSearch, NMTMetrics       options, batches, Adam, the training loop, benchmarks
//   NMTServe        ← NMTSearch, Hummingbird      mt-serve: in-flight batching, the HTTP APIs, metrics
//   NMTCommandLine  ← NMTTensor, ArgumentParser   what every program shares: --threads, --precision, error reports
//   mt-*            programs: small ParsableCommands over the floors they name. They have no package
//                   access, so `public` is exactly what the programs use.

// Release builds drop bounds and exclusivity checks in the numerical code (debug builds keep them),
// and stay testable so the test suite can run on the fast build.
let fastSwift: [SwiftSetting] = [
    .unsafeFlags(["-Ounchecked", "-enforce-exclusivity=unchecked", "-enable-testing"], .when(configuration: .release)),
]
let argumentParser = Target.Dependency.product(name: "ArgumentParser", package: "swift-argument-parser")
let hummingbird = Target.Dependency.product(name: "Hummingbird", package: "hummingbird")

/// A program: a ParsableCommand over the floors it names, without package access.
func program(_ name: String, _ floors: [Target.Dependency]) -> Target {
    .executableTarget(name: name, dependencies: floors + ["NMTCommandLine", argumentParser], packageAccess: false,
                      swiftSettings: fastSwift)
}

let package = Package(
    name: "SwiftNMT",
    products: [
        .library(name: "SwiftNMT", targets: ["NMTMetrics", "NMTText", "NMTModel", "NMTModelFiles", "NMTSearch", "NMTTraining"]),
        .executable(name: "mt-preprocess", targets: ["mt-preprocess"]),
        .executable(name: "mt-train", targets: ["mt-train"]),
        .executable(name: "mt-translate", targets: ["mt-translate"]),
        .executable(name: "mt-bleu", targets: ["mt-bleu"]),
        .executable(name: "mt-bench", targets: ["mt-bench"]),
        .executable(name: "mt-average", targets: ["mt-average"]),
        .executable(name: "mt-score", targets: ["mt-score"]),
        .executable(name: "mt-serve", targets: ["mt-serve"]),
        .executable(name: "mt-shortlist", targets: ["mt-shortlist"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.0.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.0.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.5.0"),
    ],
    targets: [
        // OpenBLAS's CBLAS (Debian: libopenblas-dev).
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS"),
        // Open MPI (Debian: libopenmpi-dev), for training on several processes.
        .systemLibrary(name: "CMPI", path: "Sources/CMPI", pkgConfig: "ompi-c", providers: [.apt(["libopenmpi-dev"])]),
        // A C API over libsentencepiece (Debian: libsentencepiece-dev).
        .target(
            name: "CSentencePiece",
            path: "Sources/CSentencePiece",
            cxxSettings: [.unsafeFlags(["-O2", "-std=c++17"])],
            linkerSettings: [.linkedLibrary("sentencepiece"), .linkedLibrary("sentencepiece_train")]
        ),
        // Element-wise kernels (GRU gates, attention, softmax, top-k, Adam) written so the C compiler vectorizes them.
        .target(
            name: "CKernels",
            path: "Sources/CKernels",
            cSettings: [.unsafeFlags(["-O3", "-ffp-contract=fast"])],
            linkerSettings: [.linkedLibrary("m")]
        ),
        // bf16 and int8 matrix products through oneDNN (Debian: libdnnl-dev), with packed weights.
        .target(
            name: "CLowPrecision",
            path: "Sources/CLowPrecision",
            cSettings: [.unsafeFlags(["-O3"])],
            linkerSettings: [.linkedLibrary("dnnl"), .linkedLibrary("gomp")]
        ),
        .target(name: "NMTVersion"),
        .target(name: "NMTMetrics", dependencies: ["NMTVersion"], swiftSettings: fastSwift),
        .target(name: "NMTTensor", dependencies: ["CBLAS", "CKernels", "CLowPrecision"], swiftSettings: fastSwift),
        .target(name: "NMTText", dependencies: ["NMTTensor", "NMTVersion", "CSentencePiece"], swiftSettings: fastSwift),
        .target(name: "NMTModel", dependencies: ["NMTTensor", "CKernels"], swiftSettings: fastSwift),
        .target(name: "NMTModelFiles", dependencies: ["NMTModel", "NMTText", "NMTTensor"], swiftSettings: fastSwift),
        .target(name: "NMTSearch", dependencies: ["NMTModelFiles", "NMTModel", "NMTText", "NMTTensor", "CKernels"],
                swiftSettings: fastSwift),
        .target(name: "NMTDistributed", dependencies: ["CMPI"], swiftSettings: fastSwift),
        .target(name: "NMTTraining",
                dependencies: ["NMTSearch", "NMTModelFiles", "NMTModel", "NMTText", "NMTTensor", "NMTMetrics", "NMTDistributed",
                               .product(name: "Yams", package: "Yams")],
                swiftSettings: fastSwift),
        .target(name: "NMTServe",
                dependencies: ["NMTSearch", "NMTTensor", hummingbird, .product(name: "Prometheus", package: "swift-prometheus"),
                               .product(name: "Logging", package: "swift-log"),
                               .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")],
                swiftSettings: fastSwift),
        .target(name: "NMTCommandLine", dependencies: ["NMTTensor", argumentParser], swiftSettings: fastSwift),
        program("mt-preprocess", ["NMTText", "NMTTensor"]),
        program("mt-train", ["NMTTraining", "NMTModelFiles", "NMTTensor", "NMTDistributed"]),
        program("mt-translate", ["NMTSearch", "NMTTensor"]),
        program("mt-bleu", ["NMTMetrics"]),
        program("mt-bench", ["NMTTraining", "NMTModel", "NMTTensor", "NMTDistributed"]),
        program("mt-average", ["NMTModelFiles"]),
        program("mt-score", ["NMTSearch", "NMTTensor"]),
        program("mt-serve", ["NMTServe"]),
        program("mt-shortlist", ["NMTModelFiles"]),
        .testTarget(
            name: "SwiftNMTTests",
            dependencies: ["NMTMetrics", "NMTText", "NMTModel", "NMTModelFiles", "NMTSearch", "NMTTraining", "NMTCommandLine", "NMTDistributed",
                           "NMTServe", "CKernels", .product(name: "HummingbirdTesting", package: "hummingbird")],
            swiftSettings: fastSwift
        ),
    ],
    swiftLanguageModes: [.v5]
)
