import ArgumentParser
import Foundation
import Herald
import HeraldCore

/// The selection filters `herald redrive` and `herald cancel` share (docs/SEMANTICS.md §8.3).
struct SelectionOptions: ParsableArguments {
    @Option(help: "Only this app's deliveries.")
    var app: HeraldID?

    @Option(help: "Only this trigger's deliveries.")
    var trigger: HeraldID?

    @Option(help: "Only deliveries of this script.")
    var script: HeraldID?

    @Option(help: "Only deliveries with this status (redrive: dead or cancelled; cancel: pending).")
    var status: DeliveryStatus?

    @Option(name: .customLong("error-contains"), help: "Only deliveries whose last error contains this text.")
    var errorContains: String?

    @Option(help: "Only deliveries whose source position is at least P.")
    var from: UInt64?

    @Option(help: "Only deliveries whose source position is at most P.")
    var to: UInt64?

    @Option(help: "At most N deliveries, the first in canonical order.")
    var limit: Int?

    @Option(help: "The admin user who acts (required; it must exist).")
    var by: HeraldID

    @Option(help: "Why (kept in the record, shown by explain).")
    var reason: String?

    @Flag(name: .customLong("dry-run"), help: "Print the deliveries it would act on and their count; append nothing.")
    var dryRun = false

    func validate() throws {
        if let limit, limit < 1 { throw ValidationError("--limit must be at least 1, not \(limit)") }
        if let from, let to, from > to { throw ValidationError("--from \(from) is after --to \(to)") }
    }

    var selection: DeliverySelection {
        DeliverySelection(app: app, trigger: trigger, script: script, status: status, errorContains: errorContains,
                          from: from, to: to, limit: limit)
    }
}

/// `herald redrive` and `herald cancel`: select, then print (dry run) or append.
enum OperatorCommand {
    static func run(_ verb: String, global: GlobalOptions, options: SelectionOptions,
                    select: (Dispatcher, DeliverySelection) throws(OperatorActionError) -> [Delivery],
                    act: (Herald, DeliverySelection) throws -> OperatorActionResult) throws {
        let directory = try global.directory
        try directory.requireExisting()
        try directory.requireKnownIDs(of: options.selection)
        var output = Output()
        if options.dryRun {
            // The state at the log's end, from the projection's checkpoint on: no writer needed.
            let selected: [Delivery]
            do { selected = try select(try directory.currentState(), options.selection) } catch let error as OperatorActionError {
                throw DataError(error.description)
            }
            for delivery in selected { output.write("\(delivery.id)\n") }
            output.flush()
            let records = (selected.count + OperatorAction.deliveriesMax - 1) / OperatorAction.deliveriesMax
            printError("dry run: \(selected.count) deliveries would be \(verb) (\(records) record(s)); nothing was appended")
            return
        }
        let herald = try Herald.open(directory: directory)
        // The records are durable once `act` returns; projecting what they changed (up to
        // 10,000 deliveries per record) is left to the next command that opens the directory.
        defer { closeReporting(herald) }
        let result: OperatorActionResult
        do {
            result = try act(herald, options.selection)
        } catch let error as OperatorActionError {
            throw DataError(error.description)
        } catch let error as RecordError {
            printError(error.description)
            throw ExitCode(1)
        }
        guard let positions = result.positions else {
            printError("no delivery matched: nothing was appended")
            return
        }
        print(positions.lowerBound == positions.upperBound ? "\(positions.lowerBound)" : "\(positions.lowerBound)…\(positions.upperBound)")
        printError("\(verb) \(result.deliveries.count) deliveries in \(positions.count) record(s) at positions \(positions.lowerBound)…\(positions.upperBound)")
    }
}

struct RedriveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "redrive",
        abstract: "Run dead or cancelled deliveries again, each with a fresh retry budget.",
        discussion: """
            Appends one delivery.redriven record per 10,000 selected deliveries (dead or \
            cancelled, whose trigger still exists). Each is pending again, due now; attempt \
            numbers go on counting. Use --dry-run first to see what it would take. Returns \
            once the records are durable; the next command that opens the data directory \
            brings the projection up to date.
            """)

    @OptionGroup var global: GlobalOptions
    @OptionGroup var options: SelectionOptions

    func run() throws {
        try OperatorCommand.run("redriven", global: global, options: options,
                                select: { state, selection throws(OperatorActionError) in try OperatorActions.redrivable(in: state, selection) },
                                act: { herald, selection in try herald.redrive(selection, by: options.by, reason: options.reason) })
    }
}

struct CancelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cancel",
        abstract: "Cancel pending deliveries: they never start again.",
        discussion: """
            Appends one delivery.cancelled record per 10,000 selected pending deliveries. An \
            attempt already running finishes, but its outcome changes nothing. Use --dry-run \
            first to see what it would take.
            """)

    @OptionGroup var global: GlobalOptions
    @OptionGroup var options: SelectionOptions

    func run() throws {
        try OperatorCommand.run("cancelled", global: global, options: options,
                                select: { state, selection throws(OperatorActionError) in try OperatorActions.cancellable(in: state, selection) },
                                act: { herald, selection in try herald.cancel(selection, by: options.by, reason: options.reason) })
    }
}

struct InvokeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "invoke",
        abstract: "Run a trigger's script once, now, with a payload of your own.",
        discussion: """
            Appends one delivery.invoked record: a delivery (P:TRIGGER_ID) of source kind manual, \
            due now, that `herald run` runs like any other (as the trigger's registering admin). \
            Prints its position.
            """)

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The trigger to invoke (any kind, enabled or not).")
    var triggerID: HeraldID

    @Option(help: "The event: one JSON value, or @FILE to read it from a file.")
    var payload: String

    @Option(help: "The admin user who invokes it (required; it must exist).")
    var by: HeraldID

    func run() throws {
        var text = payload
        if payload.hasPrefix("@") {
            let path = String(payload.dropFirst())
            guard let data = FileManager.default.contents(atPath: path), let read = String(data: data, encoding: .utf8) else {
                throw DataError("--payload @\(path): cannot read the file as UTF-8")
            }
            text = read.hasSuffix("\n") ? String(read.dropLast()) : read
        }
        let directory = try global.directory
        try directory.requireExisting()
        let herald = try Herald.open(directory: directory)
        defer { closeReporting(herald) }
        do {
            // The payload is checked like any record's field (one JSON value, at most 1 MiB).
            print(try herald.invoke(trigger: triggerID, by: by, payload: JSONText(text)))
        } catch let error as RecordError {
            printError(error.description)
            throw ExitCode(1)
        }
    }
}

/// Closes after an operator action without projecting. The records are durable already; a
/// failure to close is reported (exit status unchanged: the action happened), never hidden.
func closeReporting(_ herald: Herald) {
    do { try herald.close(projecting: false) } catch {
        printError("warning: the records are durable, but closing the data directory failed: \(error)")
    }
}
