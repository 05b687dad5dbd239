/// A line-based unified diff (`diff -u` style), computed with Myers' algorithm: the same
/// inputs always give the same bytes.
///
/// ```swift
/// let text = UnifiedDiff.render(expected: Array("a\nb\n".utf8), actual: Array("a\nc\n".utf8),
///                               expectedName: "expected/x", actualName: "actual/x")
/// // --- expected/x
/// // +++ actual/x
/// // @@ -1,2 +1,2 @@
/// //  a
/// // -b
/// // +c
/// ```
public enum UnifiedDiff {
    /// Lines of unchanged context around each change.
    public static let contextLines = 3
    /// Beyond this many differing lines Myers' search stops and the changed middle is shown
    /// as one removal plus one addition (bounds time and memory on unrelated files).
    public static let editsMax = 1000

    /// One line, with whether it ended with `\n` (so a missing final newline shows up).
    struct Line: Equatable {
        var text: Substring
        var newline: Bool
    }

    enum Edit: Equatable {
        case same(Int, Int)
        case removed(Int)
        case added(Int)
    }

    /// The unified diff of two texts; empty when they are byte-for-byte equal.
    public static func render(expected: [UInt8], actual: [UInt8], expectedName: String, actualName: String) -> String {
        if expected == actual { return "" }
        let a = split(expected)
        let b = split(actual)
        let edits = diff(a, b)
        var out = "--- \(expectedName)\n+++ \(actualName)\n"
        for hunk in hunks(edits) {
            var aStart = -1, aCount = 0, bStart = -1, bCount = 0
            var body = ""
            for edit in hunk {
                switch edit {
                case .same(let i, let j):
                    if aStart < 0 { aStart = i }
                    if bStart < 0 { bStart = j }
                    aCount += 1; bCount += 1
                    body += line(" ", a[i])
                case .removed(let i):
                    if aStart < 0 { aStart = i }
                    aCount += 1
                    body += line("-", a[i])
                case .added(let j):
                    if bStart < 0 { bStart = j }
                    bCount += 1
                    body += line("+", b[j])
                }
            }
            // diff -u: an empty range is written as the line before it, count 0.
            let aFirst = aCount == 0 ? max(0, firstIndex(hunk, inA: true)) : aStart + 1
            let bFirst = bCount == 0 ? max(0, firstIndex(hunk, inA: false)) : bStart + 1
            out += "@@ -\(range(aFirst, aCount)) +\(range(bFirst, bCount)) @@\n" + body
        }
        return out
    }

    private static func range(_ first: Int, _ count: Int) -> String {
        count == 1 ? "\(first)" : "\(first),\(count)"
    }

    /// For an empty side: the number of lines of that side before the hunk.
    private static func firstIndex(_ hunk: [Edit], inA: Bool) -> Int {
        for edit in hunk {
            switch edit {
            case .same(let i, let j): return inA ? i : j
            case .removed(let i): if inA { return i }
            case .added(let j): if !inA { return j }
            }
        }
        return 0
    }

    private static func line(_ mark: String, _ l: Line) -> String {
        mark + String(l.text) + "\n" + (l.newline ? "" : "\\ No newline at end of file\n")
    }

    static func split(_ bytes: [UInt8]) -> [Line] {
        let text = Substring(String(decoding: bytes, as: UTF8.self))
        var lines: [Line] = []
        var rest = text[...]
        while !rest.isEmpty {
            if let newline = rest.firstIndex(of: "\n") {
                lines.append(Line(text: rest[..<newline], newline: true))
                rest = rest[rest.index(after: newline)...]
            } else {
                lines.append(Line(text: rest, newline: false))
                break
            }
        }
        return lines
    }

    /// The edit script from `a` to `b`: common prefix and suffix first, Myers in between.
    static func diff(_ a: [Line], _ b: [Line]) -> [Edit] {
        var prefix = 0
        while prefix < a.count, prefix < b.count, a[prefix] == b[prefix] { prefix += 1 }
        var suffix = 0
        while suffix < a.count - prefix, suffix < b.count - prefix,
              a[a.count - 1 - suffix] == b[b.count - 1 - suffix] { suffix += 1 }
        var edits: [Edit] = (0..<prefix).map { .same($0, $0) }
        let aMid = Array(a[prefix..<(a.count - suffix)])
        let bMid = Array(b[prefix..<(b.count - suffix)])
        for edit in myers(aMid, bMid) {
            switch edit {
            case .same(let i, let j): edits.append(.same(i + prefix, j + prefix))
            case .removed(let i): edits.append(.removed(i + prefix))
            case .added(let j): edits.append(.added(j + prefix))
            }
        }
        for k in 0..<suffix {
            edits.append(.same(a.count - suffix + k, b.count - suffix + k))
        }
        return edits
    }

    /// Myers' O((N+M)·D) shortest edit script, keeping one V array per step for the backtrack.
    private static func myers(_ a: [Line], _ b: [Line]) -> [Edit] {
        let n = a.count, m = b.count
        if n == 0 { return (0..<m).map { .added($0) } }
        if m == 0 { return (0..<n).map { .removed($0) } }
        let limit = min(n + m, editsMax)
        let offset = limit + 1
        var v = [Int](repeating: 0, count: 2 * limit + 3)
        var trace: [[Int]] = []
        var found = false
        search: for d in 0...limit {
            trace.append(v)
            for k in stride(from: -d, through: d, by: 2) {
                var x: Int
                if k == -d || (k != d && v[offset + k - 1] < v[offset + k + 1]) {
                    x = v[offset + k + 1]
                } else {
                    x = v[offset + k - 1] + 1
                }
                var y = x - k
                while x < n, y < m, a[x] == b[y] { x += 1; y += 1 }
                v[offset + k] = x
                if x >= n && y >= m { found = true; break search }
            }
        }
        guard found else {
            return (0..<n).map { Edit.removed($0) } + (0..<m).map { Edit.added($0) }
        }
        // Backtrack from (n, m) through the saved V arrays.
        var edits: [Edit] = []
        var x = n, y = m
        for d in stride(from: trace.count - 1, through: 0, by: -1) {
            let vd = trace[d]
            let k = x - y
            let prevK: Int
            if d == 0 {
                prevK = 0
            } else if k == -d || (k != d && vd[offset + k - 1] < vd[offset + k + 1]) {
                prevK = k + 1
            } else {
                prevK = k - 1
            }
            let prevX = d == 0 ? 0 : vd[offset + prevK]
            let prevY = prevX - prevK
            while x > prevX && y > prevY {
                x -= 1; y -= 1
                edits.append(.same(x, y))
            }
            if d > 0 {
                if x == prevX { y -= 1; edits.append(.added(y)) } else { x -= 1; edits.append(.removed(x)) }
            }
        }
        return edits.reversed()
    }

    /// Groups edits into hunks with ``contextLines`` of context.
    private static func hunks(_ edits: [Edit]) -> [[Edit]] {
        var changes: [Int] = []
        for (index, edit) in edits.enumerated() {
            if case .same = edit { continue }
            changes.append(index)
        }
        var result: [[Edit]] = []
        var index = 0
        while index < changes.count {
            let start = max(0, changes[index] - contextLines)
            var end = changes[index]
            while index + 1 < changes.count, changes[index + 1] - end <= 2 * contextLines + 1 {
                index += 1
                end = changes[index]
            }
            result.append(Array(edits[start...min(edits.count - 1, end + contextLines)]))
            index += 1
        }
        return result
    }
}
