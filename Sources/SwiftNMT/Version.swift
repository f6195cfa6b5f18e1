/// The version written into manifests, checkpoints and metric signatures.
public enum SwiftNMT { public static let version = "0.1.0" }
