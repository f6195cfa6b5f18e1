import Foundation

/// A failure of this floor, with a message meant for the user: it names the file, and the line or
/// count where that helps. One type; the names say where it comes from.
struct TextError: Error, CustomStringConvertible, LocalizedError, Equatable {
    let message: String
    init(_ message: String) { self.message = message }
    var description: String { message }
    var errorDescription: String? { message }
}

/// A preprocessing failure (file names, line numbers, counts).
typealias PreprocessError = TextError
/// An error reported by libsentencepiece or by the wrapper.
typealias SentencePieceError = TextError
/// An error reading or writing a token dataset.
typealias TokenDatasetError = TextError
