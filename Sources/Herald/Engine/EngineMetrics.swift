import CoreMetrics
import HeraldCore

/// What a running engine reports through swift-metrics (whatever backend the process
/// bootstrapped; none by default). `herald run --metrics-port` exports them in the Prometheus
/// text format. The names and what each counts are listed in docs/EMBEDDING.md.
struct EngineMetrics: Sendable {
    /// Records appended: commands and attempt outcomes.
    let recordsAppended = Counter(label: "herald_records_appended_total")
    /// Attempts recorded, by outcome (`ok`, `error`).
    let attemptsOK = Counter(label: "herald_attempts_total", dimensions: [("outcome", "ok")])
    let attemptsError = Counter(label: "herald_attempts_total", dimensions: [("outcome", "error")])
    /// Deliveries that ran out of attempts (or gave up): dead-letter events.
    let deadLetters = Counter(label: "herald_dead_letters_total")
    /// How long each attempt ran (the duration the outcome records).
    let attemptDuration = Timer(label: "herald_attempt_duration_seconds", preferredDisplayUnit: .seconds)
    /// How long an append waited for its records to be durable (the log's group-committed fsync).
    let syncWait = Timer(label: "herald_sync_wait_seconds", preferredDisplayUnit: .seconds)
    /// Pending deliveries, after each round.
    let pending = Gauge(label: "herald_pending_deliveries")
    /// How late the most overdue pending delivery is (0 when none is due), after each round.
    let dueLag = Gauge(label: "herald_due_lag_seconds")
    /// Records the projection has not applied yet, after each background pass.
    let projectionLag = Gauge(label: "herald_projection_lag_records")
    /// The log's last position.
    let position = Gauge(label: "herald_log_position")

    /// Counts the attempts of one recorded batch.
    func recorded(_ reports: [AttemptReport]) {
        var ok = 0, error = 0, dead = 0
        for report in reports {
            if report.attempt.outcome == .ok { ok += 1 } else { error += 1 }
            if report.delivery.status == .dead { dead += 1 }
            attemptDuration.recordMilliseconds(report.attempt.durationMs)
        }
        if ok > 0 { attemptsOK.increment(by: ok) }
        if error > 0 { attemptsError.increment(by: error) }
        if dead > 0 { deadLetters.increment(by: dead) }
    }
}
