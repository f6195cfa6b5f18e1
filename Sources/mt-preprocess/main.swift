import ArgumentParser
import SwiftNMT

struct Main: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "mt-preprocess", abstract: "Not yet implemented.")
    func run() throws { throw ValidationError("mt-preprocess is not implemented yet") }
}
Main.main()
