/// Where one named parameter tensor lives inside the flat parameter buffer.
public struct ParameterView: Equatable, Sendable {
    public let name: String
    public let shape: [Int]
    public let offset: Int
    public var count: Int { shape.reduce(1, *) }
}

/// The ordered list of named tensors that make up a model. Parameters, gradients and the optimizer's
/// moments are each one flat Float buffer laid out by this, so they can be treated as one array.
public struct ParameterLayout: Sendable {
    public private(set) var views: [ParameterView] = []
    public private(set) var totalCount = 0

    public init() {}

    public mutating func add(_ name: String, _ shape: [Int]) -> ParameterView {
        precondition(!views.contains { $0.name == name }, "duplicate parameter \(name)")
        let view = ParameterView(name: name, shape: shape, offset: totalCount)
        views.append(view)
        totalCount += view.count
        return view
    }

    public func view(named name: String) -> ParameterView? { views.first { $0.name == name } }
}

/// A flat buffer laid out by a `ParameterLayout`: used for the weights and, separately, their gradients.
public final class ParameterBuffer {
    public let layout: ParameterLayout
    public let storage: FloatBuffer

    public init(layout: ParameterLayout) {
        self.layout = layout
        storage = FloatBuffer(count: layout.totalCount)
    }

    @inline(__always) public subscript(view: ParameterView) -> UnsafeMutablePointer<Float> { storage.pointer + view.offset }
    public var count: Int { layout.totalCount }
    public func zero() { storage.zero() }
}
