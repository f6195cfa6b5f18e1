/// The version written into manifests, checkpoints and metric signatures.
public let swiftNMTVersion = "0.1.0"
