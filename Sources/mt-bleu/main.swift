import ArgumentParser
import SwiftNMT

struct Main: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "mt-bleu", abstract: "Not yet implemented.")
    func run() throws { throw ValidationError("mt-bleu is not implemented yet") }
}
Main.main()
