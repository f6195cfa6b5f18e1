import ArgumentParser
import SwiftNMT

struct Main: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "mt-train", abstract: "Not yet implemented.")
    func run() throws { throw ValidationError("mt-train is not implemented yet") }
}
Main.main()
