/// Formatting of ts values (milliseconds since the Unix epoch, UTC) without Foundation.
public enum Timestamp {
    /// `2023-11-14T22:13:20.000Z`. Valid for 0 ≤ ms ≤ ``Record/tsMax``; other values print as the raw number.
    public static func iso8601(_ ms: Int64) -> String {
        guard ms >= 0, ms <= Record.tsMax else { return String(ms) }
        let days = ms / 86_400_000
        let rest = ms % 86_400_000
        // Howard Hinnant's civil_from_days.
        let z = days + 719_468
        let era = z / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yoe + era * 400 + (month <= 2 ? 1 : 0)
        func pad(_ value: Int64, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))T\(pad(rest / 3_600_000, 2)):"
            + "\(pad(rest / 60_000 % 60, 2)):\(pad(rest / 1000 % 60, 2)).\(pad(rest % 1000, 3))Z"
    }
}
