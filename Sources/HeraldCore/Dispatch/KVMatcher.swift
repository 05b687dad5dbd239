/// Finds the KV triggers of one app whose glob and ops admit a mutation, without scanning
/// every trigger.
///
/// One byte trie holds every glob: a literal ends at its node as an *exact* entry, a
/// prefix glob `users:*` ends at node `users:` as a *prefix* entry, and `*` is the empty
/// prefix at the root. Walking a collection name visits each prefix of the name once, so
/// the cost grows with the name's length, not with the number of triggers. Only enabled
/// triggers are indexed. Results come in registration order.
public struct KVMatcher: Sendable {
    /// One indexed trigger.
    public struct Entry: Sendable {
        public var triggerID: HeraldID
        public var registeredPosition: UInt64
        public var ops: OpSet
        /// What a delivery copies from its trigger, so matching needs no registry lookup.
        public var scriptID: HeraldID
        public var retry: RetryConfig
    }

    private struct Node: Sendable {
        /// Child edges, sorted by byte for binary search.
        var edgeBytes: [UInt8] = []
        var edgeNodes: [Int32] = []
        var exact: [Int32] = []
        var prefix: [Int32] = []
    }

    private var nodes: [Node] = [Node()]
    private(set) var entries: [Entry] = []

    /// Indexes the enabled KV triggers among `triggers`.
    public init(triggers: [Registry.Trigger]) {
        for trigger in triggers where trigger.enabled && trigger.kind == .kv {
            guard let kv = trigger.kv else { continue }
            let index = Int32(entries.count)
            entries.append(Entry(triggerID: trigger.id, registeredPosition: trigger.registeredPosition, ops: kv.ops,
                                 scriptID: trigger.scriptID, retry: trigger.retry))
            var glob = Array(kv.collectionGlob.utf8)
            let isPrefix = glob.last == UInt8(ascii: "*")
            if isPrefix { glob.removeLast() }
            var node = 0
            for byte in glob {
                node = child(of: node, byte: byte, create: true)
            }
            if isPrefix {
                nodes[node].prefix.append(index)
            } else {
                nodes[node].exact.append(index)
            }
        }
    }

    /// True when no trigger is indexed.
    public var isEmpty: Bool { entries.isEmpty }

    private mutating func child(of node: Int, byte: UInt8, create: Bool) -> Int {
        let bytes = nodes[node].edgeBytes
        var low = 0
        var high = bytes.count
        while low < high {
            let mid = (low + high) / 2
            if bytes[mid] < byte { low = mid + 1 } else { high = mid }
        }
        if low < bytes.count && bytes[low] == byte {
            return Int(nodes[node].edgeNodes[low])
        }
        let created = nodes.count
        nodes.append(Node())
        nodes[node].edgeBytes.insert(byte, at: low)
        nodes[node].edgeNodes.insert(Int32(created), at: low)
        return created
    }

    /// The child of `node` along `byte`, searched without retaining the node's arrays.
    @inline(__always)
    private static func find(in node: borrowing Node, byte: UInt8) -> Int? {
        node.edgeBytes.withUnsafeBufferPointer { bytes -> Int? in
            var low = 0
            var high = bytes.count
            while low < high {
                let mid = (low + high) / 2
                if bytes[mid] < byte { low = mid + 1 } else { high = mid }
            }
            guard low < bytes.count, bytes[low] == byte else { return nil }
            return Int(node.edgeNodes[low])
        }
    }

    /// The triggers matching a mutation of `collection` with `op`, in registration order.
    public func match(collection: String, op: KVOp, into result: inout [Entry]) {
        result.removeAll(keepingCapacity: true)
        var collection = collection
        nodes.withUnsafeBufferPointer { nodes in
            collection.withUTF8 { name in
                var node = 0
                collect(nodes[0].prefix, op: op, into: &result)
                for byte in name {
                    guard let next = KVMatcher.find(in: nodes[node], byte: byte) else { return }
                    node = next
                    collect(nodes[node].prefix, op: op, into: &result)
                }
                collect(nodes[node].exact, op: op, into: &result)
            }
        }
        if result.count > 1 {
            result.sort { $0.registeredPosition < $1.registeredPosition }
        }
    }

    private func collect(_ indices: [Int32], op: KVOp, into result: inout [Entry]) {
        for index in indices {
            let entry = entries[Int(index)]
            if entry.ops.admits(op) { result.append(entry) }
        }
    }
}

/// How a collection glob relates to a collection name (DESIGN.md §3 step 2).
public enum CollectionGlob {
    /// `*` matches all; `prefix*` starts-with; anything else equals. Compared bytewise.
    public static func matches(_ glob: String, _ collection: String) -> Bool {
        let globBytes = glob.utf8
        if globBytes.last == UInt8(ascii: "*") {
            return collection.utf8.starts(with: globBytes.dropLast())
        }
        return globBytes.elementsEqual(collection.utf8)
    }
}
