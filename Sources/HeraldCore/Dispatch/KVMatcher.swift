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

    /// Node `n`'s child edges are `edgeBytes[edgeStart[n]..<edgeStart[n + 1]]` (sorted, for
    /// binary search) leading to `edgeNodes[...]`; its prefix entries are
    /// `prefixEntries[prefixStart[n]..<prefixStart[n + 1]]`, its exact entries likewise. Flat
    /// arrays: a walk touches no reference counts.
    private var edgeStart: [Int32] = [0, 0]
    private var edgeBytes: [UInt8] = []
    private var edgeNodes: [Int32] = []
    private var prefixStart: [Int32] = [0, 0]
    private var prefixEntries: [Int32] = []
    private var exactStart: [Int32] = [0, 0]
    private var exactEntries: [Int32] = []
    private(set) var entries: [Entry] = []
    /// The trie while it is built.
    private struct BuildNode {
        var edges: [(byte: UInt8, node: Int32)] = []
        var exact: [Int32] = []
        var prefix: [Int32] = []
    }

    /// Indexes the enabled KV triggers among `triggers` (given in registration order).
    public init(triggers: [Registry.Trigger]) {
        var nodes = [BuildNode()]
        func child(of node: Int, byte: UInt8) -> Int {
            let edges = nodes[node].edges
            var low = 0
            var high = edges.count
            while low < high {
                let mid = (low + high) / 2
                if edges[mid].byte < byte { low = mid + 1 } else { high = mid }
            }
            if low < edges.count && edges[low].byte == byte { return Int(edges[low].node) }
            let created = nodes.count
            nodes.append(BuildNode())
            nodes[node].edges.insert((byte, Int32(created)), at: low)
            return created
        }
        for trigger in triggers.sorted(by: { $0.registeredPosition < $1.registeredPosition })
        where trigger.enabled && trigger.kind == .kv {
            guard let kv = trigger.kv else { continue }
            let index = Int32(entries.count)
            entries.append(Entry(triggerID: trigger.id, registeredPosition: trigger.registeredPosition, ops: kv.ops,
                                 scriptID: trigger.scriptID, retry: trigger.retry))
            var glob = Array(kv.collectionGlob.utf8)
            let isPrefix = glob.last == UInt8(ascii: "*")
            if isPrefix { glob.removeLast() }
            var node = 0
            for byte in glob { node = child(of: node, byte: byte) }
            if isPrefix { nodes[node].prefix.append(index) } else { nodes[node].exact.append(index) }
        }
        edgeStart = [0]
        prefixStart = [0]
        exactStart = [0]
        for node in nodes {
            for edge in node.edges {
                edgeBytes.append(edge.byte)
                edgeNodes.append(edge.node)
            }
            edgeStart.append(Int32(edgeBytes.count))
            prefixEntries.append(contentsOf: node.prefix)
            prefixStart.append(Int32(prefixEntries.count))
            exactEntries.append(contentsOf: node.exact)
            exactStart.append(Int32(exactEntries.count))
        }
    }

    /// The triggers matching a mutation of `collection` with `op`, in registration order.
    public func match(collection: String, op: KVOp, into result: inout [Entry]) {
        var indices: [Int32] = []
        matchIndices(collection: collection, into: &indices)
        result.removeAll(keepingCapacity: true)
        for index in indices where entries[Int(index)].ops.admits(op) {
            result.append(entries[Int(index)])
        }
    }

    /// Indices into ``entries`` of the triggers whose glob matches `collection` (for any op),
    /// in registration order (entries are numbered in registration order).
    func matchIndices(collection: String, into result: inout [Int32]) {
        result.removeAll(keepingCapacity: true)
        var collection = collection
        collection.withUTF8 { name in
            var node = 0
            collect(prefixEntries, prefixStart, node: 0, into: &result)
            for byte in name {
                guard let next = child(of: node, byte: byte) else { return }
                node = next
                collect(prefixEntries, prefixStart, node: node, into: &result)
            }
            collect(exactEntries, exactStart, node: node, into: &result)
        }
        // Each node's list is sorted; the lists of the prefixes walked are merged here.
        if result.count > 1 { result.sort() }
    }

    @inline(__always)
    private func child(of node: Int, byte: UInt8) -> Int? {
        var low = Int(edgeStart[node])
        var high = Int(edgeStart[node + 1])
        while low < high {
            let mid = (low + high) / 2
            if edgeBytes[mid] < byte { low = mid + 1 } else { high = mid }
        }
        guard low < Int(edgeStart[node + 1]), edgeBytes[low] == byte else { return nil }
        return Int(edgeNodes[low])
    }

    @inline(__always)
    private func collect(_ list: [Int32], _ starts: [Int32], node: Int, into result: inout [Int32]) {
        result.append(contentsOf: list[Int(starts[node])..<Int(starts[node + 1])])
    }
}

/// How a collection glob relates to a collection name (docs/SEMANTICS.md §3.1 step 2).
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
