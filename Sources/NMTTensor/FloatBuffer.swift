import Foundation

/// A contiguous, 64-byte aligned array of Float32 owned by a reference, so that workspaces can hand
/// out raw pointers to BLAS and to the C kernels without copies or exclusivity checks.
package final class FloatBuffer {
    private(set) var count: Int
    package private(set) var pointer: UnsafeMutablePointer<Float>

    package init(count: Int) {
        self.count = count
        self.pointer = FloatBuffer.allocate(count)
        pointer.initialize(repeating: 0, count: max(count, 1))
    }

    convenience init(_ values: [Float]) {
        self.init(count: values.count)
        values.withUnsafeBufferPointer { pointer.update(from: $0.baseAddress!, count: values.count) }
    }

    deinit { pointer.deallocate() }

    private static func allocate(_ count: Int) -> UnsafeMutablePointer<Float> {
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * MemoryLayout<Float>.stride, alignment: 64)
        return raw.bindMemory(to: Float.self, capacity: max(count, 1))
    }

    /// Grows to at least `minimumCount` elements (contents are not kept); never shrinks.
    /// Called when a batch is larger than any before, never inside a time loop; grows by at least
    /// a quarter so that batches of slowly rising length do not reallocate (and fault pages) each time.
    package func reserve(_ minimumCount: Int) {
        guard minimumCount > count else { return }
        let newCount = max(minimumCount, count + count / 4)
        pointer.deallocate()
        pointer = FloatBuffer.allocate(newCount)
        pointer.initialize(repeating: 0, count: newCount)
        count = newCount
    }

    package func zero(_ n: Int? = nil) { pointer.update(repeating: 0, count: n ?? count) }

    package subscript(i: Int) -> Float {
        get { pointer[i] }
        set { pointer[i] = newValue }
    }

    package var array: [Float] { Array(UnsafeBufferPointer(start: pointer, count: count)) }
}
