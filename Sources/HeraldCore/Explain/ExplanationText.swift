/// Renders explanations for people (`herald explain`) and tools (`--format json`).
public enum ExplanationText {
    /// `herald explain P` as text.
    public static func render(_ e: RecordExplanation) -> String {
        var lines: [String] = []
        lines.append("position \(e.position)  ts \(e.record.ts) (\(Timestamp.iso8601(e.record.ts)))  \(e.record.body.type.name)")
        lines.append("  \(e.summary)")
        if !e.considered.isEmpty {
            let kind = e.considered.first?.kind == .deadLetter ? "dead_letter" : "kv"
            lines.append("")
            lines.append("\(e.considered.count) \(kind) trigger(s) of the app considered, in registration order:")
            for c in e.considered {
                let mark = c.matched ? "MATCH" : "  -  "
                lines.append("  \(mark) \(c.triggerID)  \(c.reason)")
            }
        }
        if !e.created.isEmpty {
            lines.append("")
            lines.append("deliveries created:")
            for d in e.created {
                lines.append("  \(d.id)  script \(d.scriptID)  depth \(d.depth)  due \(d.dueAt.map(String.init) ?? "-")  retry \(d.retry.maxAttempts)×\(d.retry.backoff) \(d.retry.baseMs) ms")
            }
        }
        if !e.finished.isEmpty {
            lines.append("")
            lines.append("deliveries finished here:")
            for d in e.finished {
                lines.append("  \(d.id)  \(d.status) after \(d.attempts) attempt(s)")
            }
        }
        if !e.redriven.isEmpty {
            lines.append("")
            lines.append("deliveries redriven here:")
            for d in e.redriven {
                lines.append("  \(d.id)  pending again after \(d.attempts) attempt(s), due \(d.dueAt.map(String.init) ?? "-")  retry \(d.retry.maxAttempts)×\(d.retry.backoff) \(d.retry.baseMs) ms")
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// `herald explain P:TRIGGER_ID` as text.
    public static func render(_ t: DeliveryTimeline) -> String {
        var lines: [String] = ["delivery \(t.id)"]
        guard let created = t.created else {
            lines.append("  no such delivery: trigger \(t.id.triggerID) did not fire for position \(t.id.sourcePosition) (try `herald explain \(t.id.sourcePosition)`)")
            return lines.joined(separator: "\n") + "\n"
        }
        if let record = t.sourceRecord {
            lines.append("  source     position \(t.id.sourcePosition), \(record.body.type.name) at \(record.ts) (\(Timestamp.iso8601(record.ts)))")
        }
        if let trigger = t.trigger {
            var filter = ""
            if let kv = trigger.kv { filter = "glob '\(kv.collectionGlob)' ops \(kv.ops)" }
            if let dl = trigger.deadLetter {
                filter = "source_filter \(dl.sourceFilter?.description ?? "null") trigger_id_filter \(dl.triggerIDFilter?.description ?? "null") script_id_filter \(dl.scriptIDFilter?.description ?? "null")"
            }
            lines.append("  trigger    \(trigger.id) (\(trigger.kind), registered at position \(trigger.registeredPosition)) \(filter)")
        }
        let scriptName = t.script.map { " '\($0.name)' runtime \($0.runtime)" } ?? ""
        lines.append("  script     \(created.scriptID)\(scriptName)")
        if let principal = t.principal {
            lines.append("  principal  \(principal.id) (\(principal.email))")
        }
        lines.append("  kind       \(created.sourceKind), depth \(created.depth)")
        lines.append("  retry      max_attempts \(created.retry.maxAttempts), \(created.retry.backoff), base \(created.retry.baseMs) ms (cap \(RetryConfig.maxDelayMs) ms)")
        lines.append("  created    due at \(created.dueAt.map(String.init) ?? "-")")
        for event in t.events {
            switch event {
            case .attempt(let a):
                var line = "  attempt \(a.attempt.attempt)  position \(a.position)  ts \(a.ts)  \(a.attempt.outcome)  \(a.attempt.durationMs) ms"
                if a.attempt.outcome == .error {
                    line += "  error \"\(a.attempt.error ?? "")\""
                    if !a.attempt.retryable { line += " (not retryable)" }
                }
                lines.append(line)
                if let delay = a.delayMs, let due = a.nextDueAt {
                    lines.append("             retry after \(delay) ms → due at \(due)")
                }
            case .dead(let e, let caused):
                lines.append("  dead       at position \(e.position): dead-letter event depth \(e.depth), source_kind \(e.sourceKind), last error \"\(e.lastError ?? "")\"")
                if e.depth > DeadLetterEvent.maxDepth {
                    lines.append("             no dead-letter deliveries: depth \(e.depth) exceeds \(DeadLetterEvent.maxDepth)")
                } else if caused.isEmpty {
                    lines.append("             no enabled dead_letter trigger of the app matched (see `herald explain \(e.position)`)")
                }
                for d in caused {
                    lines.append("             → dead-letter delivery \(d.id) (depth \(d.depth))")
                }
            case .cancelled(let position, let cause):
                lines.append("  cancelled  at position \(position) by \(cause)")
            case .redriven(let r):
                let reason = r.reason.map { " reason \"\($0)\"" } ?? ""
                lines.append("  redriven   at position \(r.position) ts \(r.ts) by admin user \(r.by)\(reason): due at \(r.ts), a fresh budget after \(r.attemptsBefore) attempt(s)")
            }
        }
        if let d = t.current {
            let due = d.dueAt.map { ", next attempt due at \($0) (\(Timestamp.iso8601($0)))" } ?? ""
            lines.append("  status     \(d.status) after \(d.attempts) attempt(s)\(due)")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// `herald explain P --format json`: the record (as its JSON line), what it did in one
    /// sentence, each trigger considered with the verdict, and the deliveries it created,
    /// finished and redrove (canonical delivery objects).
    public static func json(_ e: RecordExplanation) -> String {
        var out = JSONOutput()
        out.beginObject()
        out.key("position"); out.uint(e.position)
        out.key("record"); RecordJSONEncoder().append(e.record, to: &out)
        out.key("summary"); out.string(e.summary)
        out.key("considered")
        out.beginArray()
        for c in e.considered {
            out.beginObject()
            out.key("trigger_id"); out.id(c.triggerID)
            out.key("kind"); out.string(c.kind.description)
            out.key("registered_position")
            if let position = c.registeredPosition { out.uint(position) } else { out.null() }
            out.key("matched"); out.bool(c.matched)
            out.key("reason"); out.string(c.reason)
            out.endObject()
        }
        out.endArray()
        for (name, deliveries) in [("created", e.created), ("finished", e.finished), ("redriven", e.redriven)] {
            out.key(name)
            out.beginArray()
            for d in deliveries { CanonicalOutput.append(d, to: &out) }
            out.endArray()
        }
        out.endObject()
        return out.text + "\n"
    }

    /// `herald explain P:TRIGGER_ID --format json`.
    public static func json(_ t: DeliveryTimeline) -> String {
        var out = JSONOutput()
        out.beginObject()
        out.key("delivery"); out.string(t.id.description)
        out.key("found"); out.bool(t.created != nil)
        if let d = t.current {
            out.key("state")
            CanonicalOutput.append(d, to: &out)
        }
        if let r = t.sourceRecord {
            out.key("source")
            out.beginObject()
            out.key("position"); out.uint(t.id.sourcePosition)
            out.key("type"); out.string(r.body.type.name)
            out.key("ts"); out.int(r.ts)
            out.endObject()
        }
        if let trigger = t.trigger {
            out.key("trigger")
            CanonicalOutput.append(trigger, to: &out)
        }
        out.key("principal"); out.id(t.principal?.id)
        out.key("attempts")
        out.beginArray()
        for a in t.attempts {
            out.beginObject()
            out.key("attempt"); out.int(a.attempt.attempt)
            out.key("position"); out.uint(a.position)
            out.key("ts"); out.int(a.ts)
            out.key("outcome"); out.string(a.attempt.outcome.description)
            out.key("error"); out.string(a.attempt.error)
            out.key("retryable"); out.bool(a.attempt.retryable)
            out.key("duration_ms"); out.int(a.attempt.durationMs)
            out.key("delay_ms")
            if let delay = a.delayMs { out.int(delay) } else { out.null() }
            out.key("next_due_at")
            if let due = a.nextDueAt { out.int(due) } else { out.null() }
            out.key("status"); out.string(a.status.description)
            out.endObject()
        }
        out.endArray()
        out.key("dead_letter")
        if let e = t.deadLetter {
            out.beginObject()
            out.key("position"); out.uint(e.position)
            out.key("depth"); out.int(e.depth)
            out.key("source_kind"); out.string(e.sourceKind.description)
            out.key("last_error"); out.string(e.lastError)
            out.key("caused")
            out.beginArray()
            for d in t.caused { out.string(d.id.description) }
            out.endArray()
            out.endObject()
        } else {
            out.null()
        }
        if !t.redrives.isEmpty {
            out.key("redrives")
            out.beginArray()
            for r in t.redrives {
                out.beginObject()
                out.key("position"); out.uint(r.position)
                out.key("ts"); out.int(r.ts)
                out.key("by"); out.id(r.by)
                out.key("reason"); out.string(r.reason)
                out.key("attempts_before"); out.int(r.attemptsBefore)
                out.endObject()
            }
            out.endArray()
        }
        out.key("cancelled")
        if let c = t.cancelledAt {
            out.beginObject()
            out.key("position"); out.uint(c.position)
            out.key("cause"); out.string(c.cause)
            out.endObject()
        } else {
            out.null()
        }
        out.endObject()
        return out.text + "\n"
    }
}
