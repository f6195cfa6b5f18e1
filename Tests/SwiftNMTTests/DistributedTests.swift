import XCTest
@testable import NMTTensor

/// mt-train under Open MPI's mpirun: N processes train as one, resume on any N, and stop together
/// (a signal) or all fail (a killed process) with their last checkpoint intact.
final class DistributedTests: XCTestCase {
    static let tinyModel = ["--embed-size", "24", "--encoder-hidden-size", "24", "--decoder-hidden-size", "32", "--attention-size", "24",
                            "--batch-sentences", "16", "--dropout", "0.3", "--log-every", "5", "--valid-every", "10",
                            "--valid-bleu-sentences", "20", "--patience", "0", "--threads", "1"]

    private var directory = ""
    private var data = ""

    override func setUpWithError() throws {
        directory = try TestCorpus.makeTempDir("distributed")
        data = try TestCorpus.preprocessed(in: directory, seed: 21, train: 400, valid: 30, vocabSize: 200)
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// mt-train alone, or under mpirun with `processes` processes; returns its exit status and stderr.
    private func train(processes: Int, _ arguments: [String], signal: (Int32, after: Double, rank: Int?)? = nil) throws -> (status: Int32, errors: String, seconds: Double) {
        let process = Process()
        let mtTrain = try Executables.path("mt-train")
        if processes == 1 {
            process.executableURL = URL(fileURLWithPath: mtTrain)
            process.arguments = arguments
        } else {
            guard let mpirun = ["/usr/bin/mpirun", "/usr/local/bin/mpirun"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
                XCTFail("mpirun is missing: scripts/setup.sh installs Open MPI (openmpi-bin)")
                return (-1, "", 0)
            }
            process.executableURL = URL(fileURLWithPath: mpirun)
            process.arguments = ["-np", "\(processes)", "--oversubscribe", mtTrain] + arguments
            var environment = ProcessInfo.processInfo.environment
            environment["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
            environment["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
            process.environment = environment
        }
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        let started = Date()
        try process.run()
        let collected = Executables.CollectedData(), read = DispatchSemaphore(value: 0)
        let reader = Thread {
            collected.data = errors.fileHandleForReading.readDataToEndOfFile()
            read.signal()
        }
        reader.start()
        if let signal {
            Thread.sleep(forTimeInterval: signal.after)
            if let rank = signal.rank {
                // One process of the job: the one mpirun started as that rank (Open MPI's environment says which).
                let victims = try Self.processes(named: "mt-train", withEnvironment: "OMPI_COMM_WORLD_RANK=\(rank)")
                XCTAssertEqual(victims.count, 1, "rank \(rank) of the job")
                for pid in victims { kill(pid, signal.0) }
            } else {
                kill(process.processIdentifier, signal.0)
            }
        }
        process.waitUntilExit()
        read.wait()
        return (process.terminationStatus, String(decoding: collected.data, as: UTF8.self), Date().timeIntervalSince(started))
    }

    /// Processes whose command line contains `name` and whose environment holds `entry`.
    private static func processes(named name: String, withEnvironment entry: String) throws -> [Int32] {
        try FileManager.default.contentsOfDirectory(atPath: "/proc").compactMap { Int32($0) }.filter { pid in
            guard let command = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline"),
                  String(decoding: command, as: UTF8.self).contains(name),
                  let environment = FileManager.default.contents(atPath: "/proc/\(pid)/environ") else { return false }
            return environment.split(separator: 0).contains { String(decoding: $0, as: UTF8.self) == entry }
        }
    }

    /// The update of a run's checkpoint (`last` -> `last-N`).
    private func checkpointUpdate(_ model: String) throws -> Int {
        let target = try FileManager.default.destinationOfSymbolicLink(atPath: model + "/last")
        return try XCTUnwrap(Int(target.dropFirst("last-".count)), target)
    }

    private func losses(_ model: String) throws -> [Double] {
        try String(contentsOfFile: model + "/log.jsonl", encoding: .utf8).split(separator: "\n").compactMap { line in
            guard line.contains("\"kind\":\"train\"") else { return nil }
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            return object?["loss"] as? Double
        }
    }

    private func weights(_ model: String) throws -> [Float] {
        let (tensors, _) = try SafeTensors.read(path: model + "/last/model.safetensors")
        return tensors.keys.sorted().flatMap { tensors[$0]!.values }
    }

    /// Losses equal to 1e-6 relative (they are sums in another order), weights to 1e-3 of the largest.
    private func assertSameTraining(_ a: String, _ b: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let la = try losses(a), lb = try losses(b)
        XCTAssertEqual(la.count, lb.count, file: file, line: line)
        XCTAssertGreaterThan(la.count, 3, file: file, line: line)
        for (x, y) in zip(la, lb) { XCTAssertEqual(x, y, accuracy: 1e-6 * abs(x), "loss curves", file: file, line: line) }
        let wa = try weights(a), wb = try weights(b)
        XCTAssertEqual(wa.count, wb.count, file: file, line: line)
        let largest = wa.map(abs).max()!
        let worst = zip(wa, wb).map { abs($0 - $1) }.max()!
        XCTAssertLessThan(worst, 1e-3 * largest, "weights differ by \(worst) (largest \(largest))", file: file, line: line)
    }

    func testTwoProcessesTrainAsOneWithDropoutAndAccumulation() throws {
        let options = Self.tinyModel + ["--max-updates", "50"]
        let one = directory + "/one", two = directory + "/two"
        var result = try train(processes: 1, ["--data", data, "--model-dir", one] + options)
        XCTAssertEqual(result.status, 0, result.errors)
        result = try train(processes: 2, ["--data", data, "--model-dir", two] + options)
        XCTAssertEqual(result.status, 0, result.errors)
        XCTAssertTrue(result.errors.contains("2 processes"), result.errors)
        XCTAssertEqual(result.errors.components(separatedBy: "done (maximum updates)").count, 2, "one voice: \(result.errors)")
        try assertSameTraining(one, two)
        // Another seed trains differently: the comparison can tell runs apart.
        let other = directory + "/other"
        XCTAssertEqual(try train(processes: 1, ["--data", data, "--model-dir", other] + options + ["--seed", "2"]).status, 0)
        let largest = try weights(one).map(abs).max()!
        XCTAssertGreaterThan(zip(try weights(one), try weights(other)).map { abs($0 - $1) }.max()!, 1e-3 * largest)

        // --accumulate 2: two batches per update, the same on one process and on three (a batch of 16 does
        // not split evenly: the processes hold 6, 5 and 5 sentences). With the weights' moving average: the
        // three processes share the optimizer step, each updating a third of the weights, moments and
        // average, and the checkpoint must still hold all of them as one process has them.
        let accumulated = ["--accumulate", "2", "--max-updates", "20", "--exponential-smoothing", "0.9"]
        let oneAccumulated = directory + "/one-acc", threeAccumulated = directory + "/three-acc"
        XCTAssertEqual(try train(processes: 1, ["--data", data, "--model-dir", oneAccumulated] + Self.tinyModel + accumulated).status, 0)
        result = try train(processes: 3, ["--data", data, "--model-dir", threeAccumulated] + Self.tinyModel + accumulated)
        XCTAssertEqual(result.status, 0, result.errors)
        try assertSameTraining(oneAccumulated, threeAccumulated)
        let optimizerOne = try SafeTensors.read(path: oneAccumulated + "/last/optimizer.safetensors").0
        let optimizerThree = try SafeTensors.read(path: threeAccumulated + "/last/optimizer.safetensors").0
        XCTAssertEqual(Set(optimizerOne.keys), ["adam.m", "adam.v", "exponential-smoothing"])
        for name in optimizerOne.keys {
            let a = optimizerOne[name]!.values, b = try XCTUnwrap(optimizerThree[name]).values
            XCTAssertEqual(a.count, b.count)
            let largest = a.map(abs).max()!, worst = zip(a, b).map { abs($0 - $1) }.max()!
            XCTAssertLessThan(worst, 1e-3 * largest, "\(name) differs by \(worst) (largest \(largest))")
        }
    }

    func testACheckpointOfTwoProcessesResumesOnOne() throws {
        let straight = directory + "/straight", split = directory + "/split"
        XCTAssertEqual(try train(processes: 1, ["--data", data, "--model-dir", straight] + Self.tinyModel + ["--max-updates", "40"]).status, 0)
        var result = try train(processes: 2, ["--data", data, "--model-dir", split] + Self.tinyModel + ["--max-updates", "20"])
        XCTAssertEqual(result.status, 0, result.errors)
        result = try train(processes: 1, ["--data", data, "--resume", split, "--max-updates", "40"])
        XCTAssertEqual(result.status, 0, result.errors)
        try assertSameTraining(straight, split)

        // --init-from: the leader reads the weights and gives them to the others.
        let initOne = directory + "/init-one", initTwo = directory + "/init-two"
        let fineTune = Self.tinyModel + ["--max-updates", "20", "--init-from", straight]
        XCTAssertEqual(try train(processes: 1, ["--data", data, "--model-dir", initOne] + fineTune).status, 0)
        result = try train(processes: 2, ["--data", data, "--model-dir", initTwo] + fineTune)
        XCTAssertEqual(result.status, 0, result.errors)
        try assertSameTraining(initOne, initTwo)
        XCTAssertLessThan(try losses(initTwo)[0], try losses(straight)[0], "it starts from the trained weights")
    }

    func testASignalStopsEveryProcessAndAKilledOneStopsThemAll() throws {
        let options = Self.tinyModel + ["--max-updates", "1000000"]
        // SIGTERM to mpirun: every process stops after the same update, and the checkpoint is written.
        let stopped = directory + "/stopped"
        let term = try train(processes: 2, ["--data", data, "--model-dir", stopped] + options, signal: (SIGTERM, after: 4, rank: nil))
        XCTAssertTrue(term.errors.contains("done (interrupted)"), term.errors)
        let log = try String(contentsOfFile: stopped + "/log.jsonl", encoding: .utf8)
        XCTAssertTrue(log.contains("\"stopped: interrupted"), log)
        let stoppedAt = try checkpointUpdate(stopped)
        let resumedStopped = try train(processes: 1, ["--data", data, "--resume", stopped, "--max-updates", "\(stoppedAt + 3)"])
        XCTAssertEqual(resumedStopped.status, 0, resumedStopped.errors)
        XCTAssertEqual(try checkpointUpdate(stopped), stoppedAt + 3, "the interrupted run resumes")

        // SIGKILL to one process: mpirun ends the others and fails, well within a minute; the last checkpoint
        // stays whole and resumable.
        let killed = directory + "/killed"
        let kill = try train(processes: 2, ["--data", data, "--model-dir", killed] + options, signal: (SIGKILL, after: 4, rank: 1))
        XCTAssertNotEqual(kill.status, 0, kill.errors)
        XCTAssertLessThan(kill.seconds, 4 + 60)
        XCTAssertTrue(FileManager.default.fileExists(atPath: killed + "/last/model.safetensors"), "a checkpoint was written before the kill")
        let killedAt = try checkpointUpdate(killed)
        let resumed = try train(processes: 1, ["--data", data, "--resume", killed, "--max-updates", "\(killedAt + 3)"])
        XCTAssertEqual(resumed.status, 0, resumed.errors)
        XCTAssertEqual(try checkpointUpdate(killed), killedAt + 3)
    }

    /// Two hosts: two network namespaces joined by a veth pair (scripts/mpi-two-hosts.sh), the processes
    /// talking over TCP; the same training as one process.
    func testTwoHostsTrainAsOne() throws {
        guard getuid() == 0 else { throw XCTSkip("network namespaces need root") }
        let probe = Process()
        probe.executableURL = URL(fileURLWithPath: "/bin/sh")
        probe.arguments = ["-c", "ip netns add nmtprobe$$ && ip netns del nmtprobe$$"]
        probe.standardError = FileHandle.nullDevice
        try probe.run()
        probe.waitUntilExit()
        guard probe.terminationStatus == 0 else { throw XCTSkip("this machine cannot make network namespaces") }
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path + "/scripts/mpi-two-hosts.sh"
        let options = Self.tinyModel.filter { $0 != "--threads" && $0 != "1" } + ["--max-updates", "20"]
        let one = directory + "/one-host", two = directory + "/two-hosts"
        XCTAssertEqual(try train(processes: 1, ["--data", data, "--model-dir", one] + options + ["--threads", "1"]).status, 0)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [script, "--data", data, "--model-dir", two] + options
        var environment = ProcessInfo.processInfo.environment
        environment["MT_TRAIN"] = try Executables.path("mt-train")
        process.environment = environment
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let text = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, text)
        try assertSameTraining(one, two)
    }
}
