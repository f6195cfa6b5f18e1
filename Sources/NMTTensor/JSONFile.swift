import Foundation

/// Decoding the JSON files the programs read (manifest.json, model.json, vocabulary.json, state.json)
/// with errors in plain words: `cannot read M/last-20/state.json: not valid JSON (truncated?)` rather than
/// the decoder's own dump of coding paths and contexts.
package enum JSONFile {
    /// Decodes `data`, the contents of `path` (which errors name).
    package static func decode<T: Decodable>(_ type: T.Type, from data: Data, path: String) throws -> T {
        do { return try JSONDecoder().decode(type, from: data) } catch let error as DecodingError {
            throw FileError("read", path, reason(error))
        }
    }

    /// What is wrong with the file, naming the key where there is one.
    static func reason(_ error: DecodingError) -> String {
        func key(_ context: DecodingError.Context) -> String {
            context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
        }
        switch error {
        case .dataCorrupted(let context) where context.codingPath.isEmpty:
            return "not valid JSON (truncated?)"
        case .dataCorrupted(let context):
            return "the value of \"\(key(context))\" is not valid"
        case .keyNotFound(let missing, let context):
            let inside = context.codingPath.isEmpty ? "" : " in \"\(key(context))\""
            return "\"\(missing.stringValue)\" is missing\(inside)"
        case .typeMismatch(let type, let context):
            return "the value of \"\(key(context))\" is not \(article(type)) \(type)"
        case .valueNotFound(let type, let context):
            return "\"\(key(context))\" is null, not \(article(type)) \(type)"
        @unknown default:
            return "not a valid file of its kind"
        }
    }

    private static func article(_ type: Any.Type) -> String { "\(type)".first.map { "AEIOU".contains($0) } == true ? "an" : "a" }
}
