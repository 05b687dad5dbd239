#!/usr/bin/env python3
"""An independent reference implementation of Herald's derivation rules (docs/SEMANTICS.md).

Written from the contract (docs/SEMANTICS.md, Schema/interchange.md) alone, without reading
Herald's Swift code, so that the contract can be checked for precision and Herald against it.
Standard library only.

    herald_ref.py deliveries [--at P] [LOG]
    herald_ref.py whatif [--at P] [--format jsonl|diff] (--set T.FIELD=VALUE | --disable T)... [LOG]

LOG is a JSON Lines file in the interchange form (Schema/interchange.md); `-` or nothing reads
standard input. The log is assumed valid (as `herald random-log` prints it): the reference does
not re-implement validation (§2.4–2.6), only derivation (§3, §8). It does validate what-if
overrides (§8.4) and exits 2 on a bad one, as `herald whatif` does.

Output is written byte for byte as §3.4 / §3.6 specify.
"""
import json
import os
import re
import sys

# --------------------------------------------------------------------------------------------
# Constants of the contract
# --------------------------------------------------------------------------------------------

DELAY_CAP_MS = 3_600_000          # §3.1 step 3: every delay is at most one hour
MAX_DEAD_LETTER_DEPTH = 3         # §3.3: deliveries only for events of depth ≤ 3
OPS_ORDER = ("insert", "update", "delete")   # §2.4: ops stored in this order
BACKOFFS = ("exponential", "linear", "constant")  # §2.4
# §2.4 and §8.2: `source_filter` is null, kv, dead_letter, http or manual (in a registration
# and in `whatif --set …source_filter=`).
SOURCE_FILTERS = ("kv", "dead_letter", "http", "manual")
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


class UsageError(Exception):
    """A bad command line or override: exit status 2 (§8.4)."""


def default_retry():
    """§2.3: omitted retry fields take the configured defaults HERALD_RETRY_* (5, exponential, 1000)."""
    return {
        "max_attempts": int(os.environ.get("HERALD_RETRY_MAX_ATTEMPTS", "5")),
        "backoff": os.environ.get("HERALD_RETRY_BACKOFF", "exponential"),
        "base_ms": int(os.environ.get("HERALD_RETRY_BASE_MS", "1000")),
    }


def lower_id(value):
    """§2.2: ids are stored and printed in lower case."""
    return value.lower() if isinstance(value, str) else value


# --------------------------------------------------------------------------------------------
# §3.6 JSON bytes of canonical outputs
# --------------------------------------------------------------------------------------------

_SHORT_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def json_string(text):
    """§3.6: escape exactly `"`, `\\` and U+0000…U+001F (short forms where they exist, else
    \\u00xx with lowercase hex); everything else (`/`, non-ASCII) is written raw."""
    out = ['"']
    for ch in text:
        esc = _SHORT_ESCAPES.get(ch)
        if esc is not None:
            out.append(esc)
        elif ord(ch) < 0x20:
            out.append("\\u%04x" % ord(ch))
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def json_value(value):
    """§3.6: compact; integers in decimal; true/false/null as such."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json_string(value)
    raise TypeError("unexpected value in canonical output: %r" % (value,))


# --------------------------------------------------------------------------------------------
# State: triggers and deliveries
# --------------------------------------------------------------------------------------------

class Trigger:
    """A registered trigger with its current values (§2.3, §2.5 updates)."""

    __slots__ = ("id", "app", "script", "kind", "enabled", "retry", "registered_by",
                 "glob", "ops", "source_filter", "trigger_id_filter", "script_id_filter",
                 "reg_pos", "alive")


class Delivery:
    """A delivery's state (§3.2). `budget_base` is the attempts count at the last redrive (§8.2)."""

    __slots__ = ("source_position", "trigger_id", "app", "script", "source_kind", "depth",
                 "status", "attempts", "due_at", "last_error", "finished_at", "retry",
                 "budget_base", "rank")

    def canonical_line(self):
        """§3.4: exactly these keys in this order; §3.6 bytes."""
        pending = self.status == "pending"
        fields = (
            ("source_position", self.source_position),
            ("trigger_id", self.trigger_id),
            ("app_id", self.app),
            ("script_id", self.script),
            ("source_kind", self.source_kind),
            ("depth", self.depth),
            ("status", self.status),
            ("attempts", self.attempts),
            ("due_at", self.due_at if pending else None),
            ("last_error", self.last_error),
            ("finished_at", None if pending else self.finished_at),
        )
        return "{" + ",".join(json_string(k) + ":" + json_value(v) for k, v in fields) + "}\n"


def retry_delay(retry, k):
    """§3.1 step 3: delay after failed attempt k (k counted from the budget base, §8.2):
    constant base; linear base·k; exponential base·2^(k−1); capped at 3,600,000 ms.
    Python integers do not overflow, so "a product too large for 64 bits counts as larger
    than the cap" holds trivially."""
    base = retry["base_ms"]
    backoff = retry["backoff"]
    if backoff == "constant":
        delay = base
    elif backoff == "linear":
        delay = base * k
    elif backoff == "exponential":
        delay = base * (2 ** (k - 1))
    else:
        raise ValueError("unknown backoff %r" % backoff)
    return min(delay, DELAY_CAP_MS)


def glob_matches(glob, collection):
    """§3.1 step 2: `*` matches every collection; `prefix*` every collection starting with
    prefix; a literal only the equal collection. Comparison is on code points, which for a
    prefix/equality test is the same as bytewise on UTF-8 (§2.4)."""
    if glob == "*":
        return True
    if glob.endswith("*"):
        return collection.startswith(glob[:-1])
    return collection == glob


def ops_match(ops, op):
    """§3.1 step 2: an empty `ops` means every op; otherwise it must contain the record's op."""
    return not ops or op in ops


# --------------------------------------------------------------------------------------------
# The world: registry + deliveries, one record at a time (§3.1)
# --------------------------------------------------------------------------------------------

class World:
    """The dispatch state after positions 1…P (§3.1). With `overrides` it is a what-if world
    (§8.4): records that do not fit are skipped and counted instead of being errors."""

    def __init__(self, overrides=None):
        self.overrides = overrides or {}      # trigger_id -> {field: value}
        self.whatif = overrides is not None
        self.admins = set()                   # live admin users
        self.apps = set()                     # live apps
        self.scripts = {}                     # live script id -> app id
        self.triggers = {}                    # every trigger ever registered (alive or not)
        self.deliveries = {}                  # (source_position, trigger_id) -> Delivery
        self.pending_by_trigger = {}          # trigger_id -> set of pending delivery keys
        self.skipped = 0                      # §8.4: recorded records that did not fit
        self.position = 0
        self.last_ts = 0

    # ---------------------------------------------------------------- §2.5 cascades, §3.1.1

    def _delete_trigger(self, trigger, position):
        """§3.1 step 1: every trigger deleted at P has each of its pending deliveries
        cancelled at P."""
        if not trigger.alive:
            return
        trigger.alive = False
        for key in sorted(self.pending_by_trigger.pop(trigger.id, ())):
            d = self.deliveries[key]
            self._finish(d, "cancelled", position)

    def _live_triggers(self):
        return [t for t in self.triggers.values() if t.alive]

    # ---------------------------------------------------------------- delivery bookkeeping

    def _create_delivery(self, position, ts, trigger, source_kind, depth):
        """A new delivery (§3.1 step 2, §3.3, §8.2 invoke): app, script and retry config are
        copied from `trigger` at creation; 0 attempts; due at t; last_error null."""
        d = Delivery()
        d.source_position = position
        d.trigger_id = trigger.id
        d.app = trigger.app
        d.script = trigger.script
        d.source_kind = source_kind
        d.depth = depth
        d.status = "pending"
        d.attempts = 0
        d.due_at = ts
        d.last_error = None
        d.finished_at = None
        d.retry = dict(trigger.retry)   # §3.1 step 1: each delivery keeps its retry config
        d.budget_base = 0
        d.rank = trigger.reg_pos          # §3.1 step 4 / §3.4 order
        key = (position, trigger.id)
        assert key not in self.deliveries, "two deliveries %s:%s" % key  # §3.2
        self.deliveries[key] = d
        self.pending_by_trigger.setdefault(trigger.id, set()).add(key)
        return d

    def _finish(self, d, status, position):
        d.status = status
        d.finished_at = position
        d.due_at = None
        self.pending_by_trigger.get(d.trigger_id, set()).discard((d.source_position, d.trigger_id))

    def _reopen(self, d, ts):
        d.status = "pending"
        d.finished_at = None
        d.due_at = ts
        self.pending_by_trigger.setdefault(d.trigger_id, set()).add((d.source_position, d.trigger_id))

    # ---------------------------------------------------------------- §8.4 overrides

    def _apply_overrides(self, trigger):
        """§8.4: an override applies right after the trigger's registration and again after
        each of its updates, winning over the recorded value of that field."""
        for field, value in self.overrides.get(trigger.id, {}).items():
            if field == "enabled":
                trigger.enabled = value
            elif field.startswith("retry."):
                trigger.retry[field[len("retry."):]] = value
            elif field == "kv.collection_glob":
                trigger.glob = value
            elif field == "kv.ops":
                trigger.ops = value
            elif field == "dead_letter.source_filter":
                trigger.source_filter = value
            elif field == "dead_letter.trigger_id_filter":
                trigger.trigger_id_filter = value
            elif field == "dead_letter.script_id_filter":
                trigger.script_id_filter = value
            else:
                raise AssertionError(field)

    # ---------------------------------------------------------------- record dispatch

    def apply(self, record):
        """Process the next record (position = previous + 1, §2.1)."""
        self.position += 1
        position = self.position
        ts = record.get("ts")
        if ts is None:
            # §2.1: Herald stamps max(now, last ts); a reference cannot know `now`.
            ts = self.last_ts
        self.last_ts = ts
        handler = _HANDLERS[record["type"]]
        handler(self, record, position, ts)

    # §3.1 step 1: registry records ------------------------------------------------------

    def on_admin_created(self, r, position, ts):
        self.admins.add(lower_id(r["admin_user_id"]))

    def on_admin_deleted(self, r, position, ts):
        """§2.5 cascades: deleting an admin user deletes the triggers it registered."""
        admin = lower_id(r["admin_user_id"])
        self.admins.discard(admin)
        for t in self._live_triggers():
            if t.registered_by == admin:
                self._delete_trigger(t, position)

    def on_app_created(self, r, position, ts):
        self.apps.add(lower_id(r["app_id"]))

    def on_app_deleted(self, r, position, ts):
        """§2.5 cascades: deleting an app deletes its scripts and triggers."""
        app = lower_id(r["app_id"])
        self.apps.discard(app)
        for sid in [s for s, a in self.scripts.items() if a == app]:
            del self.scripts[sid]
        for t in self._live_triggers():
            if t.app == app:
                self._delete_trigger(t, position)

    def on_script_registered(self, r, position, ts):
        self.scripts[lower_id(r["script_id"])] = lower_id(r["app_id"])

    def on_script_deleted(self, r, position, ts):
        """§2.5 cascades: deleting a script deletes the triggers that run it."""
        sid = lower_id(r["script_id"])
        self.scripts.pop(sid, None)
        for t in self._live_triggers():
            if t.script == sid:
                self._delete_trigger(t, position)

    def on_trigger_registered(self, r, position, ts):
        """§2.3: defaults are resolved at write time (enabled true, retry per field from the
        configured defaults, omitted dead-letter filters null)."""
        t = Trigger()
        t.id = lower_id(r["trigger_id"])
        t.app = lower_id(r["app_id"])
        t.script = lower_id(r["script_id"])
        t.kind = r["kind"]
        t.enabled = r.get("enabled", True)
        t.retry = default_retry()
        t.retry.update(r.get("retry") or {})
        t.registered_by = lower_id(r["registered_by"])
        t.glob = None
        t.ops = frozenset()
        t.source_filter = t.trigger_id_filter = t.script_id_filter = None
        if t.kind == "kv":
            t.glob = r["kv"]["collection_glob"]
            t.ops = frozenset(r["kv"]["ops"])
        else:
            dl = r.get("dead_letter") or {}
            t.source_filter = dl.get("source_filter")
            t.trigger_id_filter = lower_id(dl.get("trigger_id_filter"))
            t.script_id_filter = lower_id(dl.get("script_id_filter"))
        t.reg_pos = position
        t.alive = True
        self.triggers[t.id] = t
        self._apply_overrides(t)

    def on_trigger_updated(self, r, position, ts):
        """§2.5 updates: only what the record carries changes; inside retry/kv/dead_letter an
        omitted field keeps its value; in dead_letter null clears a filter. §3.1 step 1: the
        new retry applies only to deliveries created afterwards (they copy it at creation)."""
        t = self.triggers[lower_id(r["trigger_id"])]
        if "enabled" in r:
            t.enabled = r["enabled"]
        if "retry" in r:
            t.retry = dict(t.retry)
            t.retry.update(r["retry"])
        if "kv" in r:
            if "collection_glob" in r["kv"]:
                t.glob = r["kv"]["collection_glob"]
            if "ops" in r["kv"]:
                t.ops = frozenset(r["kv"]["ops"])
        if "dead_letter" in r:
            dl = r["dead_letter"]
            if "source_filter" in dl:
                t.source_filter = dl["source_filter"]
            if "trigger_id_filter" in dl:
                t.trigger_id_filter = lower_id(dl["trigger_id_filter"])
            if "script_id_filter" in dl:
                t.script_id_filter = lower_id(dl["script_id_filter"])
        self._apply_overrides(t)

    def on_trigger_deleted(self, r, position, ts):
        self._delete_trigger(self.triggers[lower_id(r["trigger_id"])], position)

    # §3.1 step 2: KV records -------------------------------------------------------------

    def on_kv(self, r, position, ts):
        """One delivery per trigger that (in the registry before P) is kind kv, of the record's
        app, enabled, whose glob matches the collection and whose ops are empty or contain the
        op. Source kind kv, depth 0, due at t. Ordered by registration position (§3.1.4)."""
        app = lower_id(r["app_id"])
        op = r["type"].split(".", 1)[1]
        collection = r["collection"]
        matched = [t for t in self._live_triggers()
                   if t.kind == "kv" and t.app == app and t.enabled
                   and glob_matches(t.glob, collection) and ops_match(t.ops, op)]
        for t in sorted(matched, key=lambda t: t.reg_pos):
            self._create_delivery(position, ts, t, "kv", 0)

    # §3.1 step 3 + §8.2: attempts ----------------------------------------------------------

    def _skip(self, what):
        """§8.4: a recorded record that does not fit the what-if state is skipped and counted.
        In the recorded world this cannot happen for a valid log (§2.5)."""
        if not self.whatif:
            raise ValueError("position %d: %s (the log is not valid)" % (self.position, what))
        self.skipped += 1

    def on_attempted(self, r, position, ts):
        key = (r["source_position"], lower_id(r["trigger_id"]))
        d = self.deliveries.get(key)
        k = r["attempt"]
        # §2.5 Attempts / §8.4: the delivery is pending, k = attempts + 1, ts ≥ due time.
        if d is None or d.status != "pending" or k != d.attempts + 1 or ts < d.due_at:
            self._skip("attempt %d of %d:%s does not fit" % (k, key[0], key[1]))
            return
        d.attempts = k
        if r["outcome"] == "ok":
            self._finish(d, "succeeded", position)    # §3.1.3 ok: succeeds, finished at P
            return
        d.last_error = r.get("error")                # §3.1.3: every error case sets last_error
        retryable = r.get("retryable", True)
        k_budget = k - d.budget_base                  # §8.2: the budget restarts at a redrive
        if retryable and k_budget < d.retry["max_attempts"]:
            d.due_at = ts + retry_delay(d.retry, k_budget)   # delay runs from the attempt's ts
            return
        self._die(d, position, ts)

    def _die(self, d, position, ts):
        """§3.1.3 / §3.3: D dies at P and a dead-letter event happens at P with depth D.depth+1.
        If depth ≤ 3, every live, enabled dead_letter trigger of D's app whose non-null
        filters equal the event's values gets a delivery (P, handler)."""
        self._finish(d, "dead", position)
        depth = d.depth + 1
        if depth > MAX_DEAD_LETTER_DEPTH:
            return
        handlers = [t for t in self._live_triggers()
                    if t.kind == "dead_letter" and t.app == d.app and t.enabled
                    and (t.source_filter is None or t.source_filter == d.source_kind)
                    and (t.trigger_id_filter is None or t.trigger_id_filter == d.trigger_id)
                    and (t.script_id_filter is None or t.script_id_filter == d.script)]
        for t in sorted(handlers, key=lambda t: t.reg_pos):
            # §3.3: source kind dead_letter, the event's depth, config from the handler,
            # 0 attempts, last_error null, due at t.
            self._create_delivery(position, ts, t, "dead_letter", depth)

    # §8.2 operator actions ----------------------------------------------------------------

    @staticmethod
    def _parse_delivery_id(text):
        """§8.1: "P:TRIGGER_ID", the UUID in either case (stored in lower case)."""
        pos, tid = text.split(":", 1)
        return int(pos), tid.lower()

    def on_redriven(self, r, position, ts):
        """§8.2 Redrive: each listed delivery that is dead or cancelled, and whose trigger
        still exists, becomes pending, due at t, finished_at null, last_error unchanged; its
        retry budget restarts (budget base = its attempts now). §8.4: in a what-if world it
        applies to the ids that fit and counts as skipped only when none does."""
        # §8.4: a redrive misfits when the delivery is not dead or cancelled (as in §8.2).
        fitting = []
        for text in r["deliveries"]:
            d = self.deliveries.get(self._parse_delivery_id(text))
            trigger = self.triggers.get(d.trigger_id) if d is not None else None
            if d is not None and d.status in ("dead", "cancelled") and trigger is not None and trigger.alive:
                fitting.append(d)
            elif not self.whatif:
                raise ValueError("position %d: redrive of %s does not fit" % (position, text))
        if not fitting:
            self._skip("no listed delivery can be redriven")
            return
        for d in fitting:
            self._reopen(d, ts)
            d.budget_base = d.attempts

    def on_cancelled(self, r, position, ts):
        """§8.2 Cancel: each listed pending delivery becomes cancelled, finished at P, due_at
        null; no dead-letter event. §8.4: applies to the ids that fit."""
        fitting = []
        for text in r["deliveries"]:
            d = self.deliveries.get(self._parse_delivery_id(text))
            if d is not None and d.status == "pending":
                fitting.append(d)
            elif not self.whatif:
                raise ValueError("position %d: cancel of %s does not fit" % (position, text))
        if not fitting:
            self._skip("no listed delivery is pending")
            return
        for d in fitting:
            self._finish(d, "cancelled", position)

    def on_invoked(self, r, position, ts):
        """§8.2 Invoke: the trigger (any kind, enabled or not) gets one delivery (P, trigger)
        with source kind manual, depth 0, config from the trigger, due at t."""
        t = self.triggers[lower_id(r["trigger_id"])]
        if not t.alive:
            # Not a valid log (§8.1: the trigger must exist); the what-if registry has the
            # same triggers alive as the recorded one, so this cannot be a what-if skip.
            raise ValueError("position %d: invoke of a trigger that does not exist" % position)
        self._create_delivery(position, ts, t, "manual", 0)

    # ---------------------------------------------------------------- §3.4 output

    def canonical_lines(self):
        """§3.4: every delivery (every status), ordered by (source_position, registration
        position of the trigger)."""
        ordered = sorted(self.deliveries.values(), key=lambda d: (d.source_position, d.rank))
        return [d.canonical_line() for d in ordered]


_HANDLERS = {
    "admin_user.created": World.on_admin_created,
    "admin_user.deleted": World.on_admin_deleted,
    "app.created": World.on_app_created,
    "app.deleted": World.on_app_deleted,
    "script.registered": World.on_script_registered,
    "script.deleted": World.on_script_deleted,
    "trigger.registered": World.on_trigger_registered,
    "trigger.updated": World.on_trigger_updated,
    "trigger.deleted": World.on_trigger_deleted,
    "kv.insert": World.on_kv,
    "kv.update": World.on_kv,
    "kv.delete": World.on_kv,
    "delivery.attempted": World.on_attempted,
    "delivery.redriven": World.on_redriven,
    "delivery.cancelled": World.on_cancelled,
    "delivery.invoked": World.on_invoked,
}


# --------------------------------------------------------------------------------------------
# §8.4 override parsing and validation
# --------------------------------------------------------------------------------------------

KV_FIELDS = ("kv.collection_glob", "kv.ops")
DL_FIELDS = ("dead_letter.source_filter", "dead_letter.trigger_id_filter", "dead_letter.script_id_filter")
FIELDS = ("enabled", "retry.max_attempts", "retry.backoff", "retry.base_ms") + KV_FIELDS + DL_FIELDS


def parse_int(text, low, high, what):
    # §8.4 "Spelling of values": decimal, an optional sign, leading zeros allowed (`+3`, `03`,
    # `-0`); spaces and fractions (` 3`, `3.0`) are usage errors.
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        raise UsageError("%s: '%s' is not an integer" % (what, text))
    n = int(text)
    if not low <= n <= high:
        raise UsageError("%s: must be between %d and %d, not %d" % (what, low, high, n))
    return n


def valid_glob(glob):
    """§2.4 collection_glob: not empty; `*`; a literal without `*`; or a literal followed by a
    single trailing `*`."""
    return glob != "" and (glob == "*" or "*" not in glob[:-1])


def parse_override_value(field, text, spec):
    """§8.4: each value is validated as in a registration. Ids are checked against the log
    later (they need the records 1…P)."""
    if field == "enabled":
        if text not in ("true", "false"):
            raise UsageError("%s: enabled must be true or false" % spec)
        return text == "true"
    if field == "retry.max_attempts":
        return parse_int(text, 1, 100, spec)
    if field == "retry.base_ms":
        return parse_int(text, 0, 86_400_000, spec)
    if field == "retry.backoff":
        if text not in BACKOFFS:
            raise UsageError("%s: backoff must be exponential, linear or constant" % spec)
        return text
    if field == "kv.collection_glob":
        if not valid_glob(text):
            raise UsageError("%s: not a valid collection glob" % spec)
        return text
    if field == "kv.ops":
        ops = [] if text == "" else text.split(",")
        for op in ops:
            if op not in OPS_ORDER:
                raise UsageError("%s: unknown op '%s'" % (spec, op))
        if len(set(ops)) != len(ops):
            raise UsageError("%s: an op is listed twice" % spec)
        return frozenset(ops)
    if field == "dead_letter.source_filter":
        if text == "null":
            return None
        if text not in SOURCE_FILTERS:
            raise UsageError("%s: not a source filter" % spec)
        return text
    if field in ("dead_letter.trigger_id_filter", "dead_letter.script_id_filter"):
        if text == "null":
            return None
        if not UUID_RE.match(text):
            raise UsageError("%s: not a UUID" % spec)
        return text.lower()
    raise UsageError("%s: unknown field '%s'" % (spec, field))


def parse_overrides(sets, disables):
    """Returns {trigger_id: {field: value}}.

    §8.4: a later --set of the same field wins, and --disable T wins over --set T.enabled=…
    whatever their order (sets in order, then every --disable)."""
    overrides = {}
    for spec in sets:
        if "=" not in spec:
            raise UsageError("--set %s: expected TRIGGER_ID.FIELD=VALUE" % spec)
        lhs, value = spec.split("=", 1)
        if "." not in lhs:
            raise UsageError("--set %s: expected TRIGGER_ID.FIELD=VALUE" % spec)
        tid, field = lhs.split(".", 1)
        if not UUID_RE.match(tid):
            raise UsageError("--set %s: '%s' is not a trigger id" % (spec, tid))
        if field not in FIELDS:
            raise UsageError("--set %s: unknown field '%s'" % (spec, field))
        overrides.setdefault(tid.lower(), {})[field] = parse_override_value(field, value, spec)
    for tid in disables:
        if not UUID_RE.match(tid):
            raise UsageError("--disable %s: not a trigger id" % tid)
        overrides.setdefault(tid.lower(), {})["enabled"] = False
    return overrides


def check_overrides_against_log(overrides, records):
    """§8.4: TRIGGER_ID must be registered in 1…P; kind-specific fields of the other kind are a
    usage error; a filter id must name a trigger or script of the same app registered in 1…P."""
    triggers = {}   # id -> (app, kind)
    scripts = {}    # id -> app
    for r in records:
        if r["type"] == "trigger.registered":
            triggers[lower_id(r["trigger_id"])] = (lower_id(r["app_id"]), r["kind"])
        elif r["type"] == "script.registered":
            scripts[lower_id(r["script_id"])] = lower_id(r["app_id"])
    for tid, fields in overrides.items():
        if tid not in triggers:
            raise UsageError("%s: no trigger registered in the replayed records" % tid)
        app, kind = triggers[tid]
        for field, value in fields.items():
            if field in KV_FIELDS and kind != "kv" or field in DL_FIELDS and kind != "dead_letter":
                raise UsageError("%s.%s: trigger is kind %s" % (tid, field, kind))
            if field == "dead_letter.trigger_id_filter" and value is not None:
                if triggers.get(value, (None,))[0] != app:
                    raise UsageError("%s.%s: %s is not a trigger of app %s" % (tid, field, value, app))
            if field == "dead_letter.script_id_filter" and value is not None:
                if scripts.get(value) != app:
                    raise UsageError("%s.%s: %s is not a script of app %s" % (tid, field, value, app))


# --------------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------------

def read_records(path):
    stream = sys.stdin.buffer if path in (None, "-") else open(path, "rb")
    with stream:
        # Split on "\n" only: str.splitlines() would also split on U+2028, U+0085, \x1c…,
        # which may appear raw inside JSON strings (Schema/interchange.md: one object per line).
        return [json.loads(line.decode("utf-8")) for line in stream.read().split(b"\n") if line.strip()]


def prefix(records, at):
    """§3.5 last paragraph / §8.4: --at P selects records 1…P."""
    if at is None:
        return records
    if not 0 <= at <= len(records):
        # §3.5: "`--at P` with P outside 0…last position is a usage error" (exit 2).
        raise UsageError("--at %d is outside the log (0…%d)" % (at, len(records)))
    return records[:at]


def replay(records, overrides=None):
    world = World(overrides)
    for r in records:
        world.apply(r)
    return world


def cmd_deliveries(records):
    return "".join(replay(records).canonical_lines())


def cmd_whatif(records, overrides, fmt):
    """§8.4 output: jsonl = the what-if world's canonical lines; diff = `-`/`+` lines in
    canonical order, then the summary line."""
    whatif = replay(records, overrides)
    if fmt == "jsonl":
        return "".join(whatif.canonical_lines())
    recorded = replay(records)
    keys = set(recorded.deliveries) | set(whatif.deliveries)

    def rank(key):
        d = recorded.deliveries.get(key) or whatif.deliveries[key]
        return (d.source_position, d.rank)

    out = []
    unchanged = only_recorded = only_whatif = changed = 0
    for key in sorted(keys, key=rank):
        a = recorded.deliveries.get(key)
        b = whatif.deliveries.get(key)
        la = a.canonical_line() if a else None
        lb = b.canonical_line() if b else None
        if la == lb:
            unchanged += 1
            continue
        if la is None:
            only_whatif += 1
        elif lb is None:
            only_recorded += 1
        else:
            changed += 1
        if la is not None:
            out.append("-" + la)
        if lb is not None:
            out.append("+" + lb)
    out.append("%d unchanged, %d only recorded, %d only what-if, %d changed; %d recorded records skipped\n"
               % (unchanged, only_recorded, only_whatif, changed, whatif.skipped))
    return "".join(out)


USAGE = __doc__.strip().split("\n\n")[1]


def main(argv):
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    command, args = argv[0], argv[1:]
    at = None
    fmt = "jsonl"
    sets, disables, paths = [], [], []
    i = 0
    try:
        while i < len(args):
            a = args[i]
            if a in ("--at", "--set", "--disable", "--format"):
                if i + 1 >= len(args):
                    raise UsageError("%s needs a value" % a)
                v = args[i + 1]
                i += 2
                if a == "--at":
                    at = parse_int(v, 0, 2 ** 64 - 1, "--at")
                elif a == "--set":
                    sets.append(v)
                elif a == "--disable":
                    disables.append(v)
                else:
                    if v not in ("jsonl", "diff"):
                        raise UsageError("--format must be jsonl or diff")
                    fmt = v
                continue
            paths.append(a)
            i += 1
        if len(paths) > 1:
            raise UsageError("one LOG at most")
        if command == "deliveries":
            if sets or disables:
                raise UsageError("deliveries takes no overrides")
            records = prefix(read_records(paths[0] if paths else None), at)
            text = cmd_deliveries(records)
        elif command == "whatif":
            overrides = parse_overrides(sets, disables)
            if not overrides:
                raise UsageError("whatif needs at least one override (§8.4)")
            records = prefix(read_records(paths[0] if paths else None), at)
            check_overrides_against_log(overrides, records)
            text = cmd_whatif(records, overrides, fmt)
        else:
            raise UsageError("unknown command %s" % command)
    except UsageError as e:
        sys.stderr.write("usage error: %s\n" % e)
        return 2
    sys.stdout.buffer.write(text.encode("utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
