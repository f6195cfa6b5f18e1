/// The special token ids of every SentencePiece model SwiftNMT trains.
///
/// `SentencePiece.train` always passes `--pad_id=0 --unk_id=1 --bos_id=2 --eos_id=3` to the
/// trainer, so in our models the four ids below are fixed, and ordinary pieces start at
/// `SpecialTokens.count`. Token datasets store ids *without* `bos`/`eos`; the model adds them.
/// Foreign models loaded from a `.model` file keep their own ids: use `SentencePiece.padId` etc.
/// for those (`-1` when a model has no such token).
public enum SpecialTokens {
    /// Padding (`<pad>`).
    package static let pad: Int32 = 0
    /// Unknown piece (`<unk>`; decodes to " ⁇ ").
    package static let unk: Int32 = 1
    /// Beginning of sentence (`<s>`).
    package static let bos: Int32 = 2
    /// End of sentence (`</s>`).
    package static let eos: Int32 = 3
    /// Number of special ids; the first ordinary piece has this id.
    public static let count = 4

    package static let padPiece = "<pad>"
    package static let unkPiece = "<unk>"
    package static let bosPiece = "<s>"
    package static let eosPiece = "</s>"
}
