public enum SwiftNMT { public static let version = "0.1.0" }
