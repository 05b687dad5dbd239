# Sourced by Tools/test and Tools/demo: installs what a fresh Debian machine lacks.
ensure_deps() {
    local missing=()
    [ -f /usr/include/lz4frame.h ] || missing+=(liblz4-dev)
    [ -f /usr/include/sqlite3.h ] || missing+=(libsqlite3-dev)
    # PostgreSQL's client library, for the PostgreSQL projection (`herald project --postgres`).
    [ -f /usr/include/postgresql/libpq-fe.h ] || missing+=(libpq-dev)
    # The NATS C client, for the log on NATS JetStream (`herald copy --to nats://…`).
    [ -f /usr/include/nats/nats.h ] || missing+=(libnats-dev)
    command -v lz4 >/dev/null 2>&1 || missing+=(lz4)
    # The HTTP API's tests and Tools/api-check talk to a real server through curl.
    [ -x /usr/bin/curl ] || missing+=(curl)
    if [ ${#missing[@]} -gt 0 ]; then
        echo "Installing ${missing[*]}…" >&2
        local sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >&2
    fi
    if ! command -v swift >/dev/null 2>&1; then
        echo "error: swift is not on PATH; install Swift 6 (https://swift.org/install) and retry." >&2
        exit 1
    fi
}
