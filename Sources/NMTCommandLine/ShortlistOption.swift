import ArgumentParser

/// `--shortlist [--shortlist-frequent N] [--shortlist-translations N]`: beam search over a lexical
/// shortlist, in every program that searches (mt-translate, mt-serve).
public struct ShortlistOption: ParsableArguments {
    @Flag(help: "Decode over a lexical shortlist (the model directory's shortlist.txt, written by mt-train and mt-shortlist): each sentence may use only the most frequent target pieces and the likeliest translations of its source pieces, so the output layer, softmax and top-k run over far fewer pieces.")
    public var shortlist = false

    @Option(help: "With --shortlist: how many of the most frequent target pieces every sentence may use.")
    public var shortlistFrequent = 1000

    @Option(help: "With --shortlist: how many likeliest translations of each source piece a sentence may use.")
    public var shortlistTranslations = 20

    public init() {}

    public func validate() throws {
        guard shortlistFrequent >= 0 && shortlistTranslations >= 0 else {
            throw ValidationError("--shortlist-frequent and --shortlist-translations must not be negative")
        }
    }

    /// The sizes to use, nil without `--shortlist`.
    public var sizes: (frequent: Int, translations: Int)? { shortlist ? (shortlistFrequent, shortlistTranslations) : nil }
}
