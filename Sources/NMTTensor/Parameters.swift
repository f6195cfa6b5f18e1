/// Where one named parameter tensor lives inside the flat parameter buffer.
package struct ParameterView: Equatable, Sendable {
    package let name: String
    package let shape: [Int]
    let offset: Int
    package var count: Int { shape.reduce(1, *) }
}

/// The ordered list of named tensors that make up a model. Parameters, gradients and the optimizer's
/// moments are each one flat Float buffer laid out by this, so they can be treated as one array.
package struct ParameterLayout: Sendable {
    package private(set) var views: [ParameterView] = []
    private(set) var totalCount = 0

    package init() {}

    package mutating func add(_ name: String, _ shape: [Int]) -> ParameterView {
        precondition(!views.contains { $0.name == name }, "duplicate parameter \(name)")
        let view = ParameterView(name: name, shape: shape, offset: totalCount)
        views.append(view)
        totalCount += view.count
        return view
    }

    func view(named name: String) -> ParameterView? { views.first { $0.name == name } }
}

/// A flat buffer laid out by a `ParameterLayout`: used for the weights and, separately, their gradients.
public final class ParameterBuffer {
    let layout: ParameterLayout
    package let storage: FloatBuffer
    /// The weights converted for bf16 or int8 products (`linear` uses them); nil: f32 through OpenBLAS.
    /// Set once a model is loaded for decoding; stale if the weights change afterwards.
    package var packed: PackedWeights?

    package init(layout: ParameterLayout) {
        self.layout = layout
        storage = FloatBuffer(count: layout.totalCount)
    }

    @inline(__always) package subscript(view: ParameterView) -> UnsafeMutablePointer<Float> { storage.pointer + view.offset }
    public var count: Int { layout.totalCount }
    package func zero() { storage.zero() }
}
