import CMPI
import Foundation

/// The processes of one training job and the collectives they share, over Open MPI. Run under `mpirun`
/// (Open MPI sets `OMPI_COMM_WORLD_SIZE`), a process joins MPI's world; run alone, it is a world of one
/// and MPI is never touched, so mt-train needs no launcher for a single process.
///
/// Every collective must be called by every process in the same order; a process that cannot go on calls
/// `abort`, which ends them all (rather than leaving the others waiting in a collective).
public final class ProcessGroup: @unchecked Sendable {
    public let rank: Int
    public let size: Int
    private let usesMPI: Bool

    /// This process's job: MPI's world under mpirun, else a world of one.
    public static let world: ProcessGroup = {
        guard ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_SIZE"] != nil else { return ProcessGroup() }
        guard nmt_mpi_init() == 0 else {
            FileHandle.standardError.write(Data("error: MPI could not start (MPI_Init_thread failed)\n".utf8))
            exit(1)
        }
        return ProcessGroup(rank: Int(nmt_mpi_rank()), size: Int(nmt_mpi_size()))
    }()

    /// A world of one.
    public init() {
        rank = 0
        size = 1
        usesMPI = false
    }

    private init(rank: Int, size: Int) {
        self.rank = rank
        self.size = size
        usesMPI = true
    }

    /// The process that prints, logs and writes files.
    public var isLeader: Bool { rank == 0 }

    /// Replaces `values` on every process by their sum over the processes, in buckets of 4 M floats (MPI's
    /// counts are 32-bit). The buckets go one after another once the backward pass is done; they do not
    /// overlap it.
    public func sum(_ values: UnsafeMutablePointer<Float>, count: Int) {
        guard usesMPI, size > 1 else { return }
        let bucket = 1 << 22
        for start in stride(from: 0, to: count, by: bucket) {
            check(nmt_mpi_sum_floats(values + start, Int32(min(bucket, count - start))), "all-reduce")
        }
    }

    /// Replaces each of `count` numbers on every process by its sum over the processes.
    public func sum(_ values: UnsafeMutablePointer<Double>, count: Int) {
        guard usesMPI, size > 1 else { return }
        check(nmt_mpi_sum_doubles(values, Int32(count)), "all-reduce")
    }

    /// Process `rank`'s part of a flat buffer of `count` floats when each process updates one part of the
    /// weights (a sharded optimizer step): contiguous, as equal as can be, in rank order.
    public func part(of count: Int, rank: Int? = nil) -> Range<Int> {
        let r = rank ?? self.rank
        return count * r / size..<count * (r + 1) / size
    }

    /// Whether `count` floats can go through `sumIntoPart` and `gatherParts` (MPI's counts and offsets are
    /// 32-bit); beyond that, the trainer sums the whole buffer on every process instead.
    public func canSplit(_ count: Int) -> Bool { usesMPI && size > 1 && count <= Int(Int32.max) }

    /// The sum over the processes of `values`' part for this process (`part(of: count)`), written into
    /// `part` (as long as that part): a reduce-scatter, which moves half the bytes of `sum`'s all-reduce
    /// (an all-reduce is a reduce-scatter followed by `gatherParts`).
    public func sumIntoPart(_ values: UnsafePointer<Float>, count: Int, part: UnsafeMutablePointer<Float>) {
        precondition(canSplit(count))
        layParts(count)
        check(nmt_mpi_sum_scattered_floats(values, part, partCounts), "reduce-scatter")
    }

    /// Gives every process each process's part of `values` (`part(of: count, rank:)`) from that process.
    public func gatherParts(_ values: UnsafeMutablePointer<Float>, count: Int) {
        precondition(canSplit(count))
        layParts(count)
        check(nmt_mpi_gather_parts_floats(values, partCounts, partOffsets), "all-gather")
    }

    /// The parts' counts and offsets for MPI, computed once for a buffer's size (so an update allocates nothing).
    private var partCounts: [Int32] = [], partOffsets: [Int32] = [], partsLaidFor = -1
    private func layParts(_ count: Int) {
        guard partsLaidFor != count else { return }
        let parts = (0..<size).map { part(of: count, rank: $0) }
        partCounts = parts.map { Int32($0.count) }
        partOffsets = parts.map { Int32($0.lowerBound) }
        partsLaidFor = count
    }

    /// The sum over the processes of each entry, on every process.
    public func sum(_ values: [Double]) -> [Double] {
        guard usesMPI, size > 1 else { return values }
        var summed = values
        summed.withUnsafeMutableBufferPointer { check(nmt_mpi_sum_doubles($0.baseAddress!, Int32($0.count)), "all-reduce") }
        return summed
    }

    /// The leader's `values` on every process (the same count everywhere).
    public func broadcast(_ values: UnsafeMutablePointer<Float>, count: Int) {
        guard usesMPI, size > 1 else { return }
        let bucket = 1 << 22
        for start in stride(from: 0, to: count, by: bucket) {
            check(nmt_mpi_broadcast_bytes(values + start, Int32(4 * min(bucket, count - start)), 0), "broadcast")
        }
    }

    /// The leader's bytes on every process (any length: the length goes first).
    public func broadcast(_ bytes: [UInt8]) -> [UInt8] {
        guard usesMPI, size > 1 else { return bytes }
        var length = [Double(bytes.count)]
        length.withUnsafeMutableBytes { check(nmt_mpi_broadcast_bytes($0.baseAddress!, 8, 0), "broadcast") }
        var received = isLeader ? bytes : [UInt8](repeating: 0, count: Int(length[0]))
        if !received.isEmpty {
            received.withUnsafeMutableBytes { check(nmt_mpi_broadcast_bytes($0.baseAddress!, Int32($0.count), 0), "broadcast") }
        }
        return received
    }

    /// The leader's numbers on every process.
    public func broadcast(_ values: [Double]) -> [Double] {
        guard usesMPI, size > 1 else { return values }
        var copy = values
        copy.withUnsafeMutableBytes { check(nmt_mpi_broadcast_bytes($0.baseAddress!, Int32($0.count), 0), "broadcast") }
        return copy
    }

    /// Leaves MPI at the end of a run that every process finished.
    public func finalize() {
        if usesMPI { _ = nmt_mpi_finalize() }
    }

    /// Ends every process of the job with `code` (a failure on one process would otherwise leave the
    /// others waiting in their next collective).
    public func abort(_ code: Int32) -> Never {
        if usesMPI && size > 1 { nmt_mpi_abort(code) }
        exit(code)
    }

    private func check(_ status: Int32, _ what: String) {
        // MPI's default error handler aborts the job before a failing call returns; this is a last guard.
        if status != 0 {
            FileHandle.standardError.write(Data("error: MPI \(what) failed with code \(status)\n".utf8))
            abort(1)
        }
    }
}
