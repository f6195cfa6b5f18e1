import ArgumentParser
import SwiftNMT

struct Main: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "mt-translate", abstract: "Not yet implemented.")
    func run() throws { throw ValidationError("mt-translate is not implemented yet") }
}
Main.main()
