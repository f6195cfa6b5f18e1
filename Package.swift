// swift-tools-version:6.0
import PackageDescription

// Release builds drop bounds and exclusivity checks in the numerical code (debug builds keep them),
// and stay testable so the test suite can run on the fast build.
let fastSwift: [SwiftSetting] = [
    .unsafeFlags(["-Ounchecked", "-enforce-exclusivity=unchecked", "-enable-testing"], .when(configuration: .release)),
]

let package = Package(
    name: "SwiftNMT",
    products: [
        .library(name: "SwiftNMT", targets: ["SwiftNMT"]),
        .executable(name: "mt-preprocess", targets: ["mt-preprocess"]),
        .executable(name: "mt-train", targets: ["mt-train"]),
        .executable(name: "mt-translate", targets: ["mt-translate"]),
        .executable(name: "mt-bleu", targets: ["mt-bleu"]),
        .executable(name: "mt-bench", targets: ["mt-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
    ],
    targets: [
        // OpenBLAS's CBLAS (Debian: libopenblas-dev).
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS"),
        // A C API over libsentencepiece (Debian: libsentencepiece-dev).
        .target(
            name: "CSentencePiece",
            path: "Sources/CSentencePiece",
            cxxSettings: [.unsafeFlags(["-O2", "-std=c++17"])],
            linkerSettings: [.linkedLibrary("sentencepiece"), .linkedLibrary("sentencepiece_train")]
        ),
        // Element-wise kernels (exp, tanh, sigmoid, softmax) written so the C compiler vectorizes them.
        .target(
            name: "CKernels",
            path: "Sources/CKernels",
            cSettings: [.unsafeFlags(["-O3", "-ffp-contract=fast"])],
            linkerSettings: [.linkedLibrary("m")]
        ),
        .target(
            name: "SwiftNMT",
            dependencies: ["CBLAS", "CSentencePiece", "CKernels", .product(name: "Yams", package: "Yams")],
            swiftSettings: fastSwift
        ),
        .executableTarget(
            name: "mt-preprocess",
            dependencies: ["SwiftNMT", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: fastSwift
        ),
        .executableTarget(
            name: "mt-train",
            dependencies: ["SwiftNMT", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: fastSwift
        ),
        .executableTarget(
            name: "mt-translate",
            dependencies: ["SwiftNMT", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: fastSwift
        ),
        .executableTarget(
            name: "mt-bleu",
            dependencies: ["SwiftNMT", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: fastSwift
        ),
        .executableTarget(
            name: "mt-bench",
            dependencies: ["SwiftNMT", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: fastSwift
        ),
        .testTarget(
            name: "SwiftNMTTests",
            dependencies: ["SwiftNMT"],
            swiftSettings: fastSwift
        ),
    ],
    swiftLanguageModes: [.v5]
)
