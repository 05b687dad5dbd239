import CSQLite
import Glibc
import Herald
import HeraldCore
import HeraldLog

struct BenchOptions {
    var workload: Workload
    var workDirectory: String
    var only: Set<String>
    var peers = true
    var liveEvents: Int?
    var liveRate = 10_000
    var liveSeconds = 5.0
    var liveConcurrency = 16
    var liveDurability = LogDurability.always
    var liveProjectionMs: Int64 = 1000
    var liveBatch = 4096
    var restartEvents = 690_000
}

let allWorkloads = ["ingest", "import", "scan", "storage", "derive", "project", "live", "restart", "restart-pending", "serve", "host"]

/// Each benchmark. Inputs are loaded (and decoded when needed) before the clock starts.
struct Benchmarks {
    let options: BenchOptions
    let reporter: Reporter

    var ingestDirectory: String { options.workDirectory + "/ingest" }
    var importDirectory: String { options.workDirectory + "/import" }
    var peerPath: String { options.workDirectory + "/peer.sqlite" }

    // MARK: ingest-native

    func ingest() throws {
        let setup = try LineFile(path: options.workload.setupPath)
        let events = try LineFile(path: options.workload.eventsPath)
        var records = try setup.records()
        records += try events.records(defaultTs: records.last?.ts ?? 0)
        let jsonBytes = setup.bytes.count + events.bytes.count
        removeTree(ingestDirectory)
        let data = DataDirectory(path: ingestDirectory)
        let writer = try data.openWriter(durability: .always)
        // The batches are built before the clock starts: what is timed is their append.
        let batch = 4096
        let batches = stride(from: 0, to: records.count, by: batch).map { Array(records[$0..<min($0 + batch, records.count)]) }
        let start = nowNs()
        for records in batches { try writer.append(records) }
        let elapsed = seconds(start, nowNs())
        try writer.close()
        let stats = try data.logStats()
        let rate = Double(records.count) / elapsed
        reporter.emit(Row(workload: "ingest-native", measure: "records/s (RecordWriter.append, .always, 4096/batch, one at a time)", value: rate, unit: "records/s",
                          note: "\(records.count) records in \(format3(elapsed)) s: each append waits for its own fdatasync",
                          extra: [("records", Double(records.count)), ("seconds", elapsed)]))
        // A producer that keeps up to `inFlight` batches queued (enqueue, then wait for the
        // batch `inFlight` back): it encodes the next batch while the writer's committer
        // compresses and writes and its syncer syncs. The clock stops when the last record is
        // acknowledged durable. Half a second each: three passes into fresh logs, the median
        // reported (as for the scan).
        let pipelinedDirectory = options.workDirectory + "/ingest-pipelined"
        let inFlight = 4
        var pipelinedPasses: [Double] = []
        for _ in 0..<3 {
            removeTree(pipelinedDirectory)
            let pipelinedWriter = try DataDirectory(path: pipelinedDirectory).openWriter(durability: .always)
            var queued: [UInt64] = []
            let pipelinedStart = nowNs()
            for records in batches {
                queued.append(try pipelinedWriter.enqueue(records).upperBound)
                if queued.count > inFlight { try pipelinedWriter.waitUntilDurable(through: queued.removeFirst()) }
            }
            if let last = queued.last { try pipelinedWriter.waitUntilDurable(through: last) }
            pipelinedPasses.append(seconds(pipelinedStart, nowNs()))
            try pipelinedWriter.close()
        }
        removeTree(pipelinedDirectory)
        let pipelinedElapsed = median(pipelinedPasses)
        reporter.emit(Row(workload: "ingest-native", measure: "records/s (RecordWriter.enqueue, .always, 4096/batch, \(inFlight) in flight)", value: Double(records.count) / pipelinedElapsed, unit: "records/s",
                          target: "≥ 1,500,000",
                          note: "\(records.count) records in \(format3(pipelinedElapsed)) s, until the last is acknowledged durable; median of 3 passes (\(pipelinedPasses.map(format3).joined(separator: ", ")) s)",
                          extra: [("records", Double(records.count)), ("seconds", pipelinedElapsed),
                                  ("pass1_seconds", pipelinedPasses[0]), ("pass2_seconds", pipelinedPasses[1]), ("pass3_seconds", pipelinedPasses[2])]))
        // Same append with durability .none: separates the fdatasync share from the CPU work.
        let noSyncDirectory = options.workDirectory + "/ingest-nosync"
        removeTree(noSyncDirectory)
        let noSyncWriter = try DataDirectory(path: noSyncDirectory).openWriter(durability: .none)
        let noSyncStart = nowNs()
        for records in batches { try noSyncWriter.append(records) }
        let noSyncElapsed = seconds(noSyncStart, nowNs())
        try noSyncWriter.close()
        removeTree(noSyncDirectory)
        reporter.emit(Row(workload: "ingest-native", measure: "records/s (same, durability .none)", value: Double(records.count) / noSyncElapsed, unit: "records/s",
                          note: "\(records.count) records in \(format3(noSyncElapsed)) s: the rest of the .always time is fdatasync",
                          extra: [("records", Double(records.count)), ("seconds", noSyncElapsed)]))
        let ratio = Double(stats.storedBytes) / Double(jsonBytes) * 100
        reporter.emit(Row(workload: "ingest-native", measure: "stored bytes / JSON bytes", value: ratio, unit: "%",
                          peer: "lz4 on JSON ≈ 23.8 %", target: "≤ 30 %",
                          note: "\(grouped(Double(stats.storedBytes))) B stored (\(stats.blocks) blocks) vs \(grouped(Double(jsonBytes))) B JSON; raw binary \(grouped(Double(stats.rawBytes))) B",
                          extra: [("stored_bytes", Double(stats.storedBytes)), ("json_bytes", Double(jsonBytes)), ("raw_bytes", Double(stats.rawBytes))]))
    }

    // MARK: import

    func importBench() throws {
        removeTree(importDirectory)
        let data = DataDirectory(path: importDirectory)
        let start = nowNs()
        let a = try data.importLines(from: options.workload.setupPath)
        let mid = nowNs()
        let b = try data.importLines(from: options.workload.eventsPath)
        let end = nowNs()
        let lines = a.lines + b.lines
        let elapsed = seconds(start, end)
        let hwm = procStatusKiB("VmHWM") ?? 0
        var peer = ""
        var peerRate = 0.0
        if options.peers {
            let files = [try LineFile(path: options.workload.setupPath), try LineFile(path: options.workload.eventsPath)]
            let result = try SQLitePeer.importLines(files: files, into: peerPath)
            peerRate = Double(result.lines) / result.seconds
            peer = "SQLite/Swift \(grouped(peerRate))"
        }
        reporter.emit(Row(workload: "import", measure: "lines/s (DataDirectory.importLines)", value: Double(lines) / elapsed, unit: "lines/s",
                          peer: peer, target: "≥ 600,000",
                          note: "\(lines) lines in \(format3(elapsed)) s (events alone \(format3(seconds(mid, end))) s); peak RSS \(hwm / 1024) MiB; SQLite from C ≈ 600,000",
                          extra: [("lines", Double(lines)), ("seconds", elapsed), ("peer_lines_per_s", peerRate), ("vm_hwm_kib", Double(hwm))]))
    }

    // MARK: scan

    func scan() throws {
        let logDirectory = (fileExists(importDirectory + "/log") ? importDirectory : ingestDirectory)
        guard fileExists(logDirectory + "/log") else {
            throw BenchError("no log to scan under \(options.workDirectory): run --only ingest (or import) first")
        }
        let data = DataDirectory(path: logDirectory)
        let reader = try data.openReader()
        let last = try reader.lastPosition
        let hwmBefore = procStatusKiB("VmHWM") ?? 0
        // Decoded scan (what replay and projection do). A scan takes a fifth of a second, so
        // one stop of the VM (2 – 17 ms, `host`) moves it by up to 8 %: three passes, the
        // median reported (as the bench README's own figures are medians of 3).
        var count = 0
        var kvCount = 0  // touches each record's body, as replay does
        var passes: [Double] = []
        for _ in 0..<3 {
            count = 0
            kvCount = 0
            let start = nowNs()
            try reader.forEach(from: 1) { _, record in
                count += 1
                if case .kv = record.body { kvCount += 1 }
                return true
            }
            passes.append(seconds(start, nowNs()))
            guard UInt64(count) == last else { throw BenchError("scan read \(count) records, the log holds \(last)") }
        }
        let elapsed = median(passes)
        let hwm = procStatusKiB("VmHWM") ?? 0
        // Raw scan: blocks verified and decompressed, payloads not decoded; median of 3 too.
        let logReader = try LogReader(directory: data.logPath)
        var rawCount = 0
        var rawBytes = 0
        var rawPasses: [Double] = []
        for _ in 0..<3 {
            let cursor = try logReader.makeCursor(from: 1)
            rawCount = 0
            rawBytes = 0
            let rawStart = nowNs()
            while let block = try cursor.nextBlock() {
                block.forEachRecord { _, _, payload in
                    rawCount += 1
                    rawBytes &+= payload.count
                }
            }
            rawPasses.append(seconds(rawStart, nowNs()))
        }
        let rawElapsed = median(rawPasses)
        var peer = ""
        var peerRate = 0.0
        if options.peers, fileExists(peerPath) {
            let result = try SQLitePeer.scan(path: peerPath)
            peerRate = Double(result.rows) / result.seconds
            peer = "SQLite \(grouped(peerRate))"
        }
        reporter.emit(Row(workload: "scan", measure: "records/s (RecordReader.forEach, decoded)", value: Double(count) / elapsed, unit: "records/s",
                          peer: peer, target: "≥ 5,000,000",
                          note: "\(count) records (\(kvCount) KV) in \(format3(elapsed)) s, median of 3 passes (\(passes.map(format3).joined(separator: ", ")) s); C SQLite ≈ 3.1 M rows/s",
                          extra: [("records", Double(count)), ("seconds", elapsed), ("peer_rows_per_s", peerRate),
                                  ("pass1_seconds", passes[0]), ("pass2_seconds", passes[1]), ("pass3_seconds", passes[2])]))
        reporter.emit(Row(workload: "scan", measure: "records/s (LogCursor, CRC+LZ4, no decode)", value: Double(rawCount) / rawElapsed, unit: "records/s",
                          note: "\(grouped(Double(rawBytes))) payload bytes in \(format3(rawElapsed)) s, median of 3 passes (\(rawPasses.map(format3).joined(separator: ", ")) s)",
                          extra: [("records", Double(rawCount)), ("seconds", rawElapsed),
                                  ("pass1_seconds", rawPasses[0]), ("pass2_seconds", rawPasses[1]), ("pass3_seconds", rawPasses[2])]))
        reporter.emit(Row(workload: "scan", measure: "peak RSS (VmHWM) of the scan process", value: Double(hwm) / 1024, unit: "MiB",
                          target: "flat in log length",
                          note: "log of \(last) records; VmHWM before scanning \(format3(Double(hwmBefore) / 1024)) MiB",
                          extra: [("vm_hwm_kib", Double(hwm)), ("records", Double(last))]))
    }

    // MARK: derive

    func derive() throws {
        let setup = try LineFile(path: options.workload.setupPath).records()
        let events = try LineFile(path: options.workload.eventsPath).records(defaultTs: setup.last?.ts ?? 0)
        var dispatcher = Dispatcher()
        var effects: [DispatchEffect] = []
        for record in setup {
            do throws(RecordError) { _ = try dispatcher.apply(record) } catch { throw BenchError("setup record rejected: \(error)") }
        }
        // Index every app's triggers before the clock starts: the timed loop measures matching,
        // the build is reported on its own row.
        let buildStart = nowNs()
        dispatcher.prepareMatchers()
        let buildSeconds = seconds(buildStart, nowNs())
        let moved = UnsafeMutableBufferPointer<Record>.allocate(capacity: events.count)
        _ = moved.initialize(from: events)
        defer { moved.deallocate() }
        let rssBefore = procStatusKiB("VmRSS") ?? 0
        let hwmBefore = procStatusKiB("VmHWM") ?? 0
        let created0 = dispatcher.createdCount
        let start = nowNs()
        try Self.deriveLoop(moved, dispatcher: &dispatcher, effects: &effects)
        let elapsed = seconds(start, nowNs())
        let deliveries = dispatcher.createdCount - created0
        let rssAfter = procStatusKiB("VmRSS") ?? 0
        let hwmAfter = procStatusKiB("VmHWM") ?? 0
        let pending = dispatcher.pending.count
        let triggers = dispatcher.registry.liveTriggers(app: nil).count
        var expected = ""
        if let want = options.workload.expectedDeliveries, options.workload.expectedEvents == events.count {
            // The generator's own count (workload.json), made by an independent matcher.
            expected = Int(deliveries) == want ? "count OK (\(grouped(Double(want))))" : "WRONG COUNT: expected \(grouped(Double(want)))"
        }
        var peer = ""
        var peerRate = 0.0
        var peerNote = ""
        if options.peers {
            let result = try deriveInSQLite(setup: setup, events: events)
            peerRate = Double(result.deliveries) / result.seconds
            peer = "SQLite join \(grouped(peerRate)) del/s"
            peerNote = "; SQLite join made \(result.deliveries) deliveries in \(format3(result.seconds)) s"
            if result.deliveries != Int(deliveries) { peerNote += " (MISMATCH)" }
        }
        reporter.emit(Row(workload: "derive", measure: "events/s (Dispatcher check+apply)", value: Double(events.count) / elapsed, unit: "events/s",
                          peer: peer, target: "≥ 2,000,000",
                          note: "\(events.count) events, \(triggers) triggers → \(deliveries) deliveries (\(grouped(Double(deliveries) / elapsed)) del/s) in \(format3(elapsed)) s; \(expected)\(peerNote)",
                          extra: [("events", Double(events.count)), ("deliveries", Double(deliveries)), ("seconds", elapsed),
                                  ("triggers", Double(triggers)), ("peer_deliveries_per_s", peerRate)]))
        reporter.emit(Row(workload: "derive", measure: "matcher build (every app's triggers, untimed above)", value: buildSeconds * 1000, unit: "ms",
                          note: "\(triggers) triggers indexed before the timed loop",
                          extra: [("seconds", buildSeconds), ("triggers", Double(triggers))]))
        let grown = Double(max(0, rssAfter - rssBefore)) * 1024
        reporter.emit(Row(workload: "derive", measure: "RSS growth per pending delivery", value: pending > 0 ? grown / Double(pending) : 0, unit: "B/delivery",
                          note: "\(pending) pending (never attempted) → RSS +\(format3(grown / 1_048_576)) MiB; VmHWM \(hwmBefore / 1024)→\(hwmAfter / 1024) MiB incl. the decoded input",
                          extra: [("pending", Double(pending)), ("rss_growth_bytes", grown), ("vm_hwm_kib", Double(hwmAfter))]))
        if !expected.isEmpty && expected.hasPrefix("WRONG") {
            throw BenchError("derive: \(expected), got \(deliveries)")
        }
    }

    /// The timed part of `derive` (its own symbol, so `valgrind --toggle-collect` can count it).
    /// Each record is moved out of `records` (which is left uninitialized) and dropped after it
    /// is applied, as a replay hands over each record it decodes; iterating an array instead
    /// would copy every record's strings. (Unlike a replay, dropping one only releases: the
    /// input array, kept for the SQLite peer, still holds the strings.)
    @inline(never)
    static func deriveLoop(_ records: UnsafeMutableBufferPointer<Record>, dispatcher: inout Dispatcher,
                           effects: inout [DispatchEffect]) throws {
        for index in records.indices {
            let record = records.moveElement(from: index)
            do throws(RecordError) {
                try dispatcher.check(record, statelessRulesChecked: true)
            } catch {
                records.extracting((index + 1)...).deinitialize()
                throw BenchError("event rejected by the dispatcher: \(error)")
            }
            effects.removeAll(keepingCapacity: true)
            dispatcher.applyChecked(record, effects: &effects)
        }
    }

    /// The derivation as one `INSERT … SELECT` join (tables loaded untimed).
    func deriveInSQLite(setup: [Record], events: [Record]) throws -> (deliveries: Int, seconds: Double) {
        let path = options.workDirectory + "/derive-peer.sqlite"
        for suffix in ["", "-wal", "-shm"] { unlink(path + suffix) }
        let db = try PeerDB(path: path)
        try db.exec("""
            PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;
            CREATE TABLE triggers(trigger_id TEXT PRIMARY KEY, app_id TEXT NOT NULL, reg_pos INTEGER NOT NULL,
                                  glob_kind INTEGER NOT NULL, prefix TEXT NOT NULL, ops INTEGER NOT NULL);
            CREATE INDEX triggers_app ON triggers(app_id);
            CREATE TABLE events(pos INTEGER PRIMARY KEY, app_id TEXT NOT NULL, collection TEXT NOT NULL, op INTEGER NOT NULL);
            CREATE TABLE deliveries(source_position INTEGER NOT NULL, trigger_id TEXT NOT NULL, reg_pos INTEGER NOT NULL);
            """)
        try db.exec("BEGIN")
        let insertTrigger = try db.prepare("INSERT INTO triggers VALUES (?,?,?,?,?,?)")
        defer { sqlite3_finalize(insertTrigger) }
        let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)
        for (index, record) in setup.enumerated() {
            guard case .triggerRegistered(let t) = record.body, t.kind == .kv, t.enabled, let kv = t.kv else { continue }
            var glob = kv.collectionGlob
            // 0 = all, 1 = prefix, 2 = exact
            let kind: Int64
            if glob == "*" { kind = 0; glob = "" } else if glob.hasSuffix("*") { kind = 1; glob.removeLast() } else { kind = 2 }
            sqlite3_bind_text(insertTrigger, 1, t.triggerID.description, -1, transient)
            sqlite3_bind_text(insertTrigger, 2, t.appID.description, -1, transient)
            sqlite3_bind_int64(insertTrigger, 3, Int64(index + 1))
            sqlite3_bind_int64(insertTrigger, 4, kind)
            sqlite3_bind_text(insertTrigger, 5, glob, -1, transient)
            sqlite3_bind_int64(insertTrigger, 6, Int64(kv.ops.rawValue))
            try db.step(insertTrigger)
        }
        let insertEvent = try db.prepare("INSERT INTO events VALUES (?,?,?,?)")
        defer { sqlite3_finalize(insertEvent) }
        var appText: [HeraldID: String] = [:]
        for (index, record) in events.enumerated() {
            guard case .kv(let m) = record.body else { continue }
            let app = appText[m.appID] ?? m.appID.description
            appText[m.appID] = app
            sqlite3_bind_int64(insertEvent, 1, Int64(setup.count + index + 1))
            sqlite3_bind_text(insertEvent, 2, app, -1, transient)
            sqlite3_bind_text(insertEvent, 3, m.collection, -1, transient)
            sqlite3_bind_int64(insertEvent, 4, Int64(m.op.rawValue))
            try db.step(insertEvent)
        }
        try db.exec("COMMIT; ANALYZE;")
        let start = nowNs()
        try db.exec("""
            BEGIN;
            INSERT INTO deliveries(source_position, trigger_id, reg_pos)
            SELECT e.pos, t.trigger_id, t.reg_pos FROM events e JOIN triggers t ON t.app_id = e.app_id
            WHERE (t.ops = 0 OR (t.ops & (1 << e.op)) != 0)
              AND (t.glob_kind = 0
                   OR (t.glob_kind = 2 AND t.prefix = e.collection)
                   OR (t.glob_kind = 1 AND substr(e.collection, 1, length(t.prefix)) = t.prefix))
            ORDER BY e.pos, t.reg_pos;
            COMMIT;
            """)
        let elapsed = seconds(start, nowNs())
        let count = try db.scalar("SELECT count(*) FROM deliveries")
        return (Int(count), elapsed)
    }

    // MARK: project

    func project() throws {
        guard fileExists(importDirectory + "/log") else {
            throw BenchError("no imported log under \(importDirectory): run --only import first")
        }
        let data = DataDirectory(path: importDirectory)
        let start = nowNs()
        let result = try data.rebuildProjection()
        let elapsed = seconds(start, nowNs())
        let db = try PeerDB(path: data.projectionPath)
        let deliveries = try db.scalar("SELECT count(*) FROM deliveries")
        reporter.emit(Row(workload: "project", measure: "records/s (rebuildProjection)", value: Double(result.records) / elapsed, unit: "records/s",
                          note: "\(result.records) records → \(deliveries) delivery rows in \(format3(elapsed)) s (\(grouped(Double(deliveries) / elapsed)) delivery rows/s)",
                          extra: [("records", Double(result.records)), ("seconds", elapsed), ("delivery_rows", Double(deliveries))]))
    }
}
