import ArgumentParser
import Foundation
import Herald
import HeraldCore
import HeraldServer

struct TokenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token",
        abstract: "Bearer tokens for `herald serve` (kept in DATA/server.sqlite, never in the log).",
        subcommands: [TokenCreateCommand.self, TokenListCommand.self, TokenRevokeCommand.self])
}

struct TokenCreateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create",
        abstract: "Create a token acting as an admin user of the log; print it (it is shown only once).")

    @OptionGroup var global: GlobalOptions

    @Option(help: "The admin user the token acts as (it must exist in the log).")
    var admin: HeraldID

    @Option(help: "Bind the token to this app: it reaches nothing of another app.")
    var app: HeraldID?

    @Flag(help: "The token reads only: it never appends or acts.")
    var readOnly = false

    func run() throws {
        let directory = try global.directory
        try directory.requireExisting()
        let registry = try directory.currentState().registry
        guard registry.adminUser(admin) != nil else { throw DataError("--admin \(admin) is not an admin user of the log") }
        if let app, registry.app(app) == nil { throw DataError("--app \(app) is not an app of the log") }
        let store = try ServerStore(path: directory.path + "/server.sqlite")
        let created = try store.createToken(admin: admin, app: app, readOnly: readOnly,
                                            nowMs: Int64(Date().timeIntervalSince1970 * 1000))
        print(created.token)
        printError("token \(created.id): admin user \(admin)\(app.map { ", app \($0)" } ?? "")\(readOnly ? ", read-only" : ""); keep it secret, it is not shown again")
    }
}

struct TokenListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "The tokens (ids and grants, no secrets).")

    @OptionGroup var global: GlobalOptions

    func run() throws {
        let directory = try global.directory
        try directory.requireExisting()
        let store = try ServerStore(path: directory.path + "/server.sqlite")
        let rows = try store.tokens().map { token, created -> [String] in
            [token.tokenID, token.admin.description, token.app?.description ?? "-", token.readOnly ? "read-only" : "read-write",
             withUTC(created)]
        }
        var output = Output()
        output.write(renderTable(header: ["ID", "ADMIN", "APP", "ACCESS", "CREATED"], rows: rows))
        output.write("\(rows.count) token(s)\n")
        output.flush()
    }
}

struct TokenRevokeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "revoke", abstract: "Revoke a token by its id (its next request gets 401).")

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The token's id (`herald token list`).")
    var id: String

    func run() throws {
        let directory = try global.directory
        try directory.requireExisting()
        let store = try ServerStore(path: directory.path + "/server.sqlite")
        guard try store.revokeToken(id: id) else { throw DataError("there is no token \(id)") }
        print("revoked token \(id)")
    }
}
