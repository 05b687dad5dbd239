import CNATS
#if canImport(Glibc)
import Glibc
#endif

/// An error from NATS or JetStream: what was being done, libnats's status text, and the
/// JetStream error code when the server sent one (10071: wrong last sequence, …).
public struct NATSError: Error, Sendable, CustomStringConvertible {
    public var doing: String
    public var message: String
    /// libnats's status (`NATS_TIMEOUT`, …) as a number.
    public var status: Int
    /// The JetStream API error code, 0 when none.
    public var code: Int

    public var description: String {
        "NATS: \(doing): \(message)" + (code != 0 ? " (JetStream error \(code))" : "")
    }

    var isTimeout: Bool { status == Int(NATS_TIMEOUT.rawValue) }
    var isNotFound: Bool {
        status == Int(NATS_NOT_FOUND.rawValue) || code == Int(JSNoMessageFoundErr.rawValue) || code == Int(JSStreamNotFoundErr.rawValue)
    }
    var isWrongLastSequence: Bool { code == Int(JSStreamWrongLastSequenceErr.rawValue) }
    /// Worth asking again: a timeout, no JetStream responder yet (a stream or meta leader
    /// being elected), or the connection between servers (libnats reconnects by itself).
    var isTransient: Bool {
        isTimeout || status == Int(NATS_NO_RESPONDERS.rawValue) || status == Int(NATS_CONNECTION_DISCONNECTED.rawValue)
            || code == Int(JSClusterNotAvailErr.rawValue) || code == Int(JSStreamOfflineErr.rawValue)
    }
}

/// Runs `body` again while it fails with a transient error (``NATSError/isTransient``), for up
/// to `seconds`, 250 ms apart: reads are idempotent, so a leader election only delays them.
func retryingTransient<T>(for seconds: Int = 60, _ body: () throws -> T) throws -> T {
    var waited = 0
    while true {
        do {
            return try body()
        } catch let error as NATSError where error.isTransient && waited < seconds * 1_000 {
            usleep(250_000)
            waited += 250
        }
    }
}

/// One NATS connection and its JetStream context. Synchronous calls, each bounded by the
/// timeout given at connect. Not thread-safe: one owner at a time.
final class NATSClient: @unchecked Sendable {
    private let connection: OpaquePointer
    private let jetStream: OpaquePointer
    let timeoutMs: Int64

    init(servers: String, timeoutMs: Int64) throws {
        self.timeoutMs = timeoutMs
        var options: OpaquePointer?
        try Self.check(natsOptions_Create(&options), "creating connection options")
        defer { natsOptions_Destroy(options) }
        // Each server of the list (a cluster): libnats tries them and reconnects among them.
        let list = servers.split(separator: ",").map { strdup(String($0)) }
        defer { list.forEach { free($0) } }
        var pointers = list.map { UnsafePointer<CChar>($0) }
        try Self.check(natsOptions_SetServers(options, &pointers, Int32(pointers.count)), "setting the servers \(servers)")
        try Self.check(natsOptions_SetTimeout(options, timeoutMs), "setting the timeout")
        // Reconnects (a cluster node killed) are libnats's: it retries for up to a minute.
        try Self.check(natsOptions_SetMaxReconnect(options, 120), "setting reconnects")
        try Self.check(natsOptions_SetReconnectWait(options, 500), "setting the reconnect wait")
        var connection: OpaquePointer?
        try Self.check(natsConnection_Connect(&connection, options), "connecting to \(servers)")
        guard let connection else { throw NATSError(doing: "connecting to \(servers)", message: "no connection", status: 0, code: 0) }
        var jsOptions = jsOptions()
        jsOptions_Init(&jsOptions)
        jsOptions.Wait = timeoutMs
        var context: OpaquePointer?
        let status = natsConnection_JetStream(&context, connection, &jsOptions)
        guard status == NATS_OK, let context else {
            natsConnection_Destroy(connection)
            throw Self.error(status, jsErrCode(0), "opening JetStream")
        }
        self.connection = connection
        self.jetStream = context
    }

    deinit {
        jsCtx_Destroy(jetStream)
        natsConnection_Close(connection)
        natsConnection_Destroy(connection)
    }

    static func error(_ status: natsStatus, _ code: jsErrCode, _ doing: String) -> NATSError {
        var text = String(cString: natsStatus_GetText(status))
        var last = natsStatus(0)
        if let detail = nats_GetLastError(&last) {
            let more = String(cString: detail)
            if !more.isEmpty && more != text { text += ": " + more }
        }
        return NATSError(doing: doing, message: text, status: Int(status.rawValue), code: Int(code.rawValue))
    }

    static func check(_ status: natsStatus, _ doing: String) throws {
        guard status == NATS_OK else { throw error(status, jsErrCode(0), doing) }
    }

    /// The stream's state: its last sequence, and whether it refuses deletes and purges.
    struct StreamState {
        var lastSequence: UInt64
        var firstSequence: UInt64
        var denies: Bool
        var replicas: Int64
        /// Direct gets allowed (raw messages from any replica, no JSON): how reads fetch blocks.
        var allowsDirect: Bool
    }

    /// The state of `stream`, or nil when there is no such stream.
    func streamState(_ stream: String) throws -> StreamState? {
        try retryingTransient { try streamStateOnce(stream) }
    }

    private func streamStateOnce(_ stream: String) throws -> StreamState? {
        var info: UnsafeMutablePointer<jsStreamInfo>?
        var code = jsErrCode(0)
        let status = js_GetStreamInfo(&info, jetStream, stream, nil, &code)
        if status != NATS_OK {
            let failure = Self.error(status, code, "reading stream \(stream)'s state")
            if failure.isNotFound { return nil }
            throw failure
        }
        guard let info else { return nil }
        defer { jsStreamInfo_Destroy(info) }
        let config = info.pointee.Config
        return StreamState(lastSequence: info.pointee.State.LastSeq, firstSequence: info.pointee.State.FirstSeq,
                           denies: config.map { $0.pointee.DenyDelete && $0.pointee.DenyPurge } ?? false,
                           replicas: config.map { $0.pointee.Replicas } ?? 0,
                           allowsDirect: config.map { $0.pointee.AllowDirect } ?? false)
    }

    /// Creates `stream` on `subject`: file storage, `replicas` copies, deletes and purges
    /// refused, new messages refused when full (never old ones dropped).
    func createStream(_ stream: String, subject: String, replicas: Int64) throws {
        var config = jsStreamConfig()
        jsStreamConfig_Init(&config)
        var code = jsErrCode(0)
        let status: natsStatus = stream.withCString { name in
            subject.withCString { subjectText in
                var subjects: [UnsafePointer<CChar>?] = [subjectText]
                return subjects.withUnsafeMutableBufferPointer { list in
                    config.Name = name
                    config.Subjects = list.baseAddress
                    config.SubjectsLen = 1
                    config.Storage = js_FileStorage
                    config.Replicas = replicas
                    config.DenyDelete = true
                    config.DenyPurge = true
                    config.Discard = js_DiscardNew
                    config.Retention = js_LimitsPolicy
                    config.AllowDirect = true
                    var info: UnsafeMutablePointer<jsStreamInfo>?
                    let status = js_AddStream(&info, jetStream, &config, nil, &code)
                    if let info { jsStreamInfo_Destroy(info) }
                    return status
                }
            }
        }
        guard status == NATS_OK else { throw Self.error(status, code, "creating stream \(stream)") }
    }

    /// The data of message `sequence` of `stream`, or nil when the stream has none there.
    /// `direct`: by a direct get (the raw message, answered by any replica), which the stream
    /// must allow; else by the stream's message-get API (JSON, the data base64-encoded).
    func message(_ stream: String, sequence: UInt64, direct: Bool = false) throws -> [UInt8]? {
        try retryingTransient { try messageOnce(stream, sequence: sequence, direct: direct) }
    }

    private func messageOnce(_ stream: String, sequence: UInt64, direct: Bool) throws -> [UInt8]? {
        var message: OpaquePointer?
        var code = jsErrCode(0)
        let status: natsStatus
        if direct {
            var options = jsDirectGetMsgOptions()
            jsDirectGetMsgOptions_Init(&options)
            options.Sequence = sequence
            status = js_DirectGetMsg(&message, jetStream, stream, nil, &options)
        } else {
            status = js_GetMsg(&message, jetStream, stream, sequence, nil, &code)
        }
        guard status == NATS_OK, let message else {
            let failure = Self.error(status, code, "reading message \(sequence) of stream \(stream)")
            if failure.isNotFound { return nil }
            throw failure
        }
        defer { natsMsg_Destroy(message) }
        let count = Int(natsMsg_GetDataLength(message))
        guard count > 0, let data = natsMsg_GetData(message) else { return [] }
        return Array(UnsafeRawBufferPointer(start: data, count: count))
    }

    /// Publishes `data` on `subject` with `Nats-Msg-Id: id` and `Nats-Expected-Last-Sequence:
    /// expected` (set as headers: the client's option treats 0 as "unset", and the first
    /// message must say 0). Returns the sequence and whether the server saw it as a duplicate.
    func publish(_ data: [UInt8], subject: String, id: String, expectedLastSequence expected: UInt64) throws -> (sequence: UInt64, duplicate: Bool) {
        var message: OpaquePointer?
        try data.withUnsafeBytes { bytes in
            try Self.check(natsMsg_Create(&message, subject, nil, bytes.baseAddress?.assumingMemoryBound(to: CChar.self), Int32(bytes.count)),
                           "building a message")
        }
        guard let message else { throw NATSError(doing: "building a message", message: "no message", status: 0, code: 0) }
        defer { natsMsg_Destroy(message) }
        try Self.check(natsMsgHeader_Set(message, "Nats-Msg-Id", id), "setting Nats-Msg-Id")
        try Self.check(natsMsgHeader_Set(message, "Nats-Expected-Last-Sequence", String(expected)), "setting Nats-Expected-Last-Sequence")
        var options = jsPubOptions()
        jsPubOptions_Init(&options)
        options.MaxWait = timeoutMs
        var ack: UnsafeMutablePointer<jsPubAck>?
        var code = jsErrCode(0)
        let status = js_PublishMsg(&ack, jetStream, message, &options, &code)
        guard status == NATS_OK, let ack else {
            throw Self.error(status, code, "publishing on \(subject) after sequence \(expected)")
        }
        defer { jsPubAck_Destroy(ack) }
        return (ack.pointee.Sequence, ack.pointee.Duplicate)
    }
}
