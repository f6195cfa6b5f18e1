/// The version written into manifests, checkpoints and metric signatures.
package let swiftNMTVersion = "0.1.0"
