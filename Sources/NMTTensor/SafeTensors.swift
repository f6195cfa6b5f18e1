import Foundation

/// Reading and writing the safetensors format (as the Python `safetensors` package does):
/// an 8-byte little-endian header length, a JSON header mapping each tensor name to its dtype,
/// shape and byte range, then the raw little-endian data. F32 and F16 are supported; F16 files
/// are converted to Float32 on load.
package enum SafeTensors {
    package enum DType: String, Sendable {
        case f32 = "F32", f16 = "F16"
        var width: Int { self == .f32 ? 4 : 2 }
    }

    package struct Tensor: Sendable {
        package var name: String
        package var shape: [Int]
        package var values: [Float]
        package init(name: String, shape: [Int], values: [Float]) {
            self.name = name
            self.shape = shape
            self.values = values
        }
    }

    enum Error: Swift.Error, CustomStringConvertible {
        case unreadable(String, String)
        case malformed(String, String)

        var description: String {
            switch self {
            case .unreadable(let path, let why): return "cannot read \(path): \(why)"
            case .malformed(let path, let why): return "\(path) is not a valid safetensors file: \(why)"
            }
        }
    }

    /// A tensor to serialize, with its values lent for the call: an array's, or memory the caller keeps
    /// alive (the weights and optimizer state go to disk from their own buffers, without a copy).
    package struct Source {
        let name: String, shape: [Int], count: Int
        let withValues: ((UnsafeBufferPointer<Float>) throws -> Void) throws -> Void

        package init(name: String, shape: [Int], values: UnsafeBufferPointer<Float>) {
            (self.name, self.shape, count) = (name, shape, values.count)
            withValues = { body in try body(values) }
        }

        init(_ tensor: Tensor) {
            (name, shape, count) = (tensor.name, tensor.shape, tensor.values.count)
            withValues = { body in try tensor.values.withUnsafeBufferPointer(body) }
        }
    }

    /// Serializes tensors (in the given order) with optional string metadata.
    package static func encode(_ tensors: [Tensor], dtype: DType = .f32, metadata: [String: String] = [:]) throws -> Data {
        var data = Data()
        try serialize(tensors.map(Source.init), dtype: dtype, metadata: metadata) { data.append(contentsOf: $0) }
        return data
    }

    /// Writes tensors to `path` atomically, block by block: memory does not grow with the file.
    package static func write(_ tensors: [Source], dtype: DType = .f32, metadata: [String: String] = [:], to path: String) throws {
        let writer = try AtomicFileWriter(path: path)
        try serialize(tensors, dtype: dtype, metadata: metadata) { try writer.write($0) }
        try writer.commit()
    }

    /// The file's bytes, in order, given to `sink` a block at a time.
    private static func serialize(_ tensors: [Source], dtype: DType, metadata: [String: String],
                                  into sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        let width = dtype.width
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var offset = 0
        for t in tensors {
            precondition(t.count == t.shape.reduce(1, *), "\(t.name): shape \(t.shape) does not match \(t.count) values")
            let size = t.count * width
            header[t.name] = ["dtype": dtype.rawValue, "shape": t.shape, "data_offsets": [offset, offset + size]] as [String: Any]
            offset += size
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        // Pad the header with spaces so the data starts 8-byte aligned, as the reference writer does.
        while (8 + json.count) % 8 != 0 { json.append(0x20) }
        try withUnsafeBytes(of: UInt64(json.count).littleEndian) { try sink($0) }
        try json.withUnsafeBytes { try sink($0) }
        var block = [UInt8](repeating: 0, count: 1 << 16)
        let perBlock = block.count / width
        for t in tensors {
            try t.withValues { values in
                for start in stride(from: 0, to: values.count, by: perBlock) {
                    let n = min(perBlock, values.count - start)
                    block.withUnsafeMutableBytes { out in
                        switch dtype {
                        case .f32:
                            for k in 0..<n { out.storeBytes(of: values[start + k].bitPattern.littleEndian, toByteOffset: 4 * k, as: UInt32.self) }
                        case .f16:
                            for k in 0..<n { out.storeBytes(of: Float16(values[start + k]).bitPattern.littleEndian, toByteOffset: 2 * k, as: UInt16.self) }
                        }
                    }
                    try block.withUnsafeBytes { try sink(UnsafeRawBufferPointer(rebasing: $0[0..<n * width])) }
                }
            }
        }
    }

    /// Parses a safetensors file; every tensor comes back as Float32. `path` names it in errors.
    /// Every entry of the header is checked (its byte range inside the data, matching its shape, shared
    /// with no other tensor) before any values are read, so a forged header cannot make this allocate
    /// more than the file holds.
    package static func decode(_ data: Data, path: String) throws -> (tensors: [String: Tensor], metadata: [String: String]) {
        guard data.count >= 8 else { throw Error.malformed(path, "only \(data.count) bytes") }
        let headerLength = data.prefix(8).withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        guard headerLength <= UInt64(data.count - 8) else {
            throw Error.malformed(path, "header length \(headerLength) exceeds the file size \(data.count) (truncated?)")
        }
        // Relative to the start: `data` may be a slice, whose indices do not start at 0.
        let headerData = Data(data.dropFirst(8).prefix(Int(headerLength)))
        let base = 8 + Int(headerLength)
        let (entries, metadata) = try parseHeader(headerData, available: data.count - base, path: path)
        var tensors: [String: Tensor] = [:]
        for entry in entries {
            let count = entry.bytes.count / entry.dtype.width
            var values = [Float](repeating: 0, count: count)
            data.withUnsafeBytes { raw in
                let start = raw.baseAddress! + base + entry.bytes.lowerBound
                for i in 0..<count {
                    switch entry.dtype {
                    case .f32: values[i] = Float(bitPattern: UInt32(littleEndian: (start + 4 * i).loadUnaligned(as: UInt32.self)))
                    case .f16: values[i] = Float(Float16(bitPattern: UInt16(littleEndian: (start + 2 * i).loadUnaligned(as: UInt16.self))))
                    }
                }
            }
            tensors[entry.name] = Tensor(name: entry.name, shape: entry.shape, values: values)
        }
        return (tensors, metadata)
    }

    /// The header's entries, each checked against the `available` bytes of data after the header, and its metadata.
    private static func parseHeader(_ headerData: Data, available: Int, path: String) throws -> (entries: [Entry], metadata: [String: String]) {
        guard let header = (try? JSONSerialization.jsonObject(with: headerData)) as? [String: Any] else {
            throw Error.malformed(path, "header is not a JSON object")
        }
        var entries: [Entry] = []
        var metadata: [String: String] = [:]
        for (name, value) in header {
            if name == "__metadata__" {
                metadata = value as? [String: String] ?? [:]
                continue
            }
            entries.append(try Entry(name: name, value, available: available, path: path))
        }
        try checkDisjoint(entries, path: path)
        return (entries, metadata)
    }

    /// Every tensor's name and shape, read from the file's header alone (checked as `decode` checks it), so
    /// that a reader can check what a file holds before it allocates anything for it.
    package static func shapes(path: String) throws -> [String: [Int]] {
        guard let file = FileHandle(forReadingAtPath: path) else { throw Error.unreadable(path, "it cannot be opened") }
        defer { try? file.close() }
        do {
            let size = try file.seekToEnd()
            try file.seek(toOffset: 0)
            let prefix = try file.read(upToCount: 8) ?? Data()
            guard prefix.count == 8 else { throw Error.malformed(path, "only \(prefix.count) bytes") }
            let headerLength = prefix.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
            guard headerLength <= size - 8 else {
                throw Error.malformed(path, "header length \(headerLength) exceeds the file size \(size) (truncated?)")
            }
            let headerData = try file.read(upToCount: Int(headerLength)) ?? Data()
            let (entries, _) = try parseHeader(headerData, available: Int(size - 8 - headerLength), path: path)
            return Dictionary(uniqueKeysWithValues: entries.map { ($0.name, $0.shape) })
        } catch let error as Error {
            throw error
        } catch {
            throw Error.unreadable(path, (error as NSError).localizedDescription)
        }
    }

    /// One tensor's header entry, checked against the data.
    private struct Entry {
        let name: String, dtype: DType, shape: [Int]
        /// Offsets into the data (after the header).
        let bytes: Range<Int>

        init(name: String, _ value: Any, available: Int, path: String) throws {
            guard let entry = value as? [String: Any], let dtypeName = entry["dtype"] as? String,
                  let shape = entry["shape"] as? [Int], let offsets = entry["data_offsets"] as? [Int], offsets.count == 2 else {
                throw Error.malformed(path, "bad header entry for \(name)")
            }
            guard let dtype = DType(rawValue: dtypeName) else { throw Error.malformed(path, "\(name) has unsupported dtype \(dtypeName)") }
            // Checked in this order so that no arithmetic on the header's numbers can overflow.
            guard offsets[0] >= 0, offsets[0] <= offsets[1] else {
                throw Error.malformed(path, "\(name): byte range \(offsets) is not a range")
            }
            guard offsets[1] <= available else {
                throw Error.malformed(path, "\(name) ends at byte \(offsets[1]) but the data has \(available) bytes (truncated?)")
            }
            guard byteCount(shape, width: dtype.width) == offsets[1] - offsets[0] else {
                throw Error.malformed(path, "\(name): byte range \(offsets) does not match shape \(shape)")
            }
            (self.name, self.dtype, self.shape, bytes) = (name, dtype, shape, offsets[0]..<offsets[1])
        }
    }

    /// The bytes of a tensor of `shape`; nil when a dimension is negative or the size overflows.
    /// The element count first, then the width (as the reference reader counts): an empty tensor such
    /// as [2^62, 0] is then valid in every dtype, so a file read as F16 can be written back as F32.
    private static func byteCount(_ shape: [Int], width: Int) -> Int? {
        var elements = 1
        for dimension in shape {
            guard dimension >= 0 else { return nil }
            let (product, overflow) = elements.multipliedReportingOverflow(by: dimension)
            if overflow { return nil }
            elements = product
        }
        let (bytes, overflow) = elements.multipliedReportingOverflow(by: width)
        return overflow ? nil : bytes
    }

    /// Two tensors sharing bytes would be two names for one set of values: a broken or forged file.
    private static func checkDisjoint(_ entries: [Entry], path: String) throws {
        let sorted = entries.filter { !$0.bytes.isEmpty }.sorted { $0.bytes.lowerBound < $1.bytes.lowerBound }
        for (previous, next) in zip(sorted, sorted.dropFirst()) where next.bytes.lowerBound < previous.bytes.upperBound {
            throw Error.malformed(path, "the byte ranges of \(previous.name) (\(previous.bytes)) and \(next.name) (\(next.bytes)) overlap")
        }
    }

    package static func read(path: String) throws -> (tensors: [String: Tensor], metadata: [String: String]) {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw Error.unreadable(path, (error as NSError).localizedDescription)
        }
        return try decode(data, path: path)
    }
}
