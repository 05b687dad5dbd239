#!/usr/bin/env python3
"""A second random-log generator, for what `herald random-log` does not produce.

    gen_log.py SEED RECORDS > log.jsonl

`herald random-log` only updates `enabled` and `retry`, never uses `source_filter: manual`,
writes every attempt's error as `eNNN`, and always spells ids in lower case. This generator
(seeded, deterministic) also writes `trigger.updated` patches of `kv` and `dead_letter`
(set, clear, self-reference), `manual` source filters, invokes of dead-letter triggers,
redrives of deliveries of disabled triggers, attempts exactly at their due time, error texts
with quotes, backslashes, control characters, `/`, DEL, U+2028 and non-BMP characters,
upper-case ids, omitted defaults, and large retry values (the one-hour cap).

It tracks the state with the reference's own World (herald_ref.py) so that every record it
prints is valid; `herald import` is the judge of that (the compare script reports a log it
refuses).
"""
import json
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import herald_ref  # noqa: E402

ERRORS = ["e", "", "quote \" and backslash \\", "slash / and tab\t", "nl\nline", "\x00\x01\x1f\x7f",
          "\u00e9t\u00e9", "sep\u2028para\u2029", "emoji \U0001F600", "\b\f\r", "timeout"]
COLLECTIONS = ["o", "oo", "orders", "u:", "u:1", "u:eu", "x", "\u00e9", "a/b"]
GLOBS = ["*", "o", "o*", "orders", "u:*", "u:1", "x", "\u00e9*", "a/*", "zz"]


class Gen:
    def __init__(self, seed):
        self.rng = random.Random(seed)
        self.world = herald_ref.World()
        self.next_id = 1
        self.ts = self.rng.randint(0, 10_000)
        self.out = []

    def new_id(self):
        n = self.next_id
        self.next_id += 1
        return "00000000-0000-4000-8000-%012x" % n

    def spell(self, ident):
        """Ids are accepted in either case (§2.2)."""
        return ident.upper() if self.rng.random() < 0.15 else ident

    def emit(self, record, min_ts=None):
        r = self.rng.random()
        step = 0 if r < 0.2 else self.rng.randint(1, 3000) if r < 0.95 else self.rng.randint(1, 5_000_000)
        self.ts = max(self.ts + step, min_ts if min_ts is not None else 0)
        if min_ts is not None and self.rng.random() < 0.4:
            self.ts = max(self.ts - step, min_ts)   # exactly at the due time, when allowed
        record = dict(record)
        record["ts"] = self.ts
        record = {"type": record.pop("type"), "ts": record.pop("ts"), **record}
        self.world.apply(record)
        self.out.append(json.dumps(record, ensure_ascii=self.rng.random() < 0.5, separators=(",", ":")))

    # ---- helpers over the current state
    def live_triggers(self, app=None):
        return [t for t in self.world.triggers.values() if t.alive and (app is None or t.app == app)]

    def app_scripts(self, app):
        return [s for s, a in self.world.scripts.items() if a == app]

    def retry(self):
        r = {}
        if self.rng.random() < 0.8:
            r["max_attempts"] = self.rng.choice([1, 1, 2, 3, 4, 100])
        if self.rng.random() < 0.8:
            r["backoff"] = self.rng.choice(herald_ref.BACKOFFS)
        if self.rng.random() < 0.8:
            r["base_ms"] = self.rng.choice([0, 1, 10, 1000, 2_000_000, 86_400_000])
        return r

    def filters(self, app, exclude=None, partial=False):
        d = {}
        keys = ["source_filter", "trigger_id_filter", "script_id_filter"]
        for k in keys:
            if partial and self.rng.random() < 0.5 or not partial and self.rng.random() < 0.3:
                continue
            if self.rng.random() < 0.35:
                d[k] = None
            elif k == "source_filter":
                d[k] = self.rng.choice(["kv", "dead_letter", "http", "manual"])
            elif k == "trigger_id_filter":
                cands = [t.id for t in self.live_triggers(app) if t.id != exclude]
                if partial and exclude and self.rng.random() < 0.3:
                    cands = [exclude]       # a later update may name the trigger itself (§2.5)
                d[k] = self.spell(self.rng.choice(cands)) if cands else None
            else:
                cands = self.app_scripts(app)
                d[k] = self.spell(self.rng.choice(cands)) if cands else None
        return d

    def kv_details(self, partial=False):
        d = {}
        if not partial or self.rng.random() < 0.6:
            d["collection_glob"] = self.rng.choice(GLOBS)
        if not partial or self.rng.random() < 0.6:
            d["ops"] = self.rng.sample(herald_ref.OPS_ORDER, self.rng.randint(0, 3))
        return d

    # ---- one random record
    def step(self):
        w = self.world
        admins = sorted(w.admins)
        apps = sorted(w.apps)
        choice = self.rng.random()
        if not admins or choice < 0.02:
            return self.emit({"type": "admin_user.created", "admin_user_id": self.spell(self.new_id()), "email": "a@b"})
        if not apps or choice < 0.04:
            return self.emit({"type": "app.created", "app_id": self.new_id(), "name": self.rng.choice(["", "shop"])})
        app = self.rng.choice(apps)
        scripts = self.app_scripts(app)
        if not scripts or choice < 0.07:
            return self.emit({"type": "script.registered", "script_id": self.new_id(), "app_id": self.spell(app),
                              "name": "s", "runtime": "r", "source": ""})
        triggers = self.live_triggers(app)
        if len(triggers) < 2 or choice < 0.13:
            kind = self.rng.choice(["kv", "kv", "dead_letter"])
            tid = self.new_id()
            r = {"type": "trigger.registered", "trigger_id": tid, "app_id": self.spell(app),
                 "script_id": self.spell(self.rng.choice(scripts)), "kind": kind,
                 "registered_by": self.spell(self.rng.choice(admins))}
            if self.rng.random() < 0.3:
                r["enabled"] = self.rng.random() < 0.7
            if self.rng.random() < 0.7:
                r["retry"] = self.retry()
            if kind == "kv":
                r["kv"] = self.kv_details()
            else:
                r["dead_letter"] = self.filters(app, exclude=tid)
            return self.emit(r)
        if choice < 0.21:
            t = self.rng.choice(triggers)
            r = {"type": "trigger.updated", "trigger_id": self.spell(t.id)}
            if self.rng.random() < 0.5:
                r["enabled"] = self.rng.random() < 0.6
            if self.rng.random() < 0.3:
                r["retry"] = self.retry()
            if self.rng.random() < 0.6:
                if t.kind == "kv":
                    r["kv"] = self.kv_details(partial=True)
                else:
                    r["dead_letter"] = self.filters(app, exclude=t.id, partial=True)
            return self.emit(r)
        pending = [d for d in w.deliveries.values() if d.status == "pending" and w.triggers[d.trigger_id].alive]
        if pending and choice < 0.55:
            d = self.rng.choice(pending)
            ok = self.rng.random() < 0.3
            r = {"type": "delivery.attempted", "source_position": d.source_position,
                 "trigger_id": self.spell(d.trigger_id), "attempt": d.attempts + 1,
                 "outcome": "ok" if ok else "error", "duration_ms": self.rng.randint(0, 50)}
            if not ok:
                r["error"] = self.rng.choice(ERRORS)
                if self.rng.random() < 0.6:
                    r["retryable"] = self.rng.random() < 0.8
            elif self.rng.random() < 0.3:
                r["error"] = None
            return self.emit(r, min_ts=d.due_at)
        if choice < 0.62:
            redrivable = [d for d in w.deliveries.values()
                          if d.status in ("dead", "cancelled") and w.triggers[d.trigger_id].alive]
            if redrivable:
                picks = self.rng.sample(redrivable, min(len(redrivable), self.rng.randint(1, 3)))
                r = {"type": "delivery.redriven", "deliveries": ["%d:%s" % (d.source_position, self.spell(d.trigger_id)) for d in picks],
                     "by": self.spell(self.rng.choice(admins))}
                if self.rng.random() < 0.5:
                    r["reason"] = self.rng.choice(ERRORS)
                return self.emit(r)
        if pending and choice < 0.66:
            picks = self.rng.sample(pending, min(len(pending), self.rng.randint(1, 3)))
            return self.emit({"type": "delivery.cancelled", "deliveries": ["%d:%s" % (d.source_position, d.trigger_id) for d in picks],
                              "by": self.rng.choice(admins)})
        if choice < 0.71:
            t = self.rng.choice(self.live_triggers())
            return self.emit({"type": "delivery.invoked", "trigger_id": self.spell(t.id), "by": self.rng.choice(admins),
                              "payload": self.rng.choice([None, 1, "x", {"a": [1]}])})
        if choice < 0.73:
            return self.emit({"type": "trigger.deleted", "trigger_id": self.rng.choice(triggers).id})
        if choice < 0.74 and len(scripts) > 1:
            return self.emit({"type": "script.deleted", "script_id": self.rng.choice(scripts)})
        if choice < 0.745 and len(apps) > 2:
            return self.emit({"type": "app.deleted", "app_id": app})
        if choice < 0.75 and len(admins) > 2:
            return self.emit({"type": "admin_user.deleted", "admin_user_id": self.rng.choice(admins)})
        op = self.rng.choice(["insert", "update", "delete"])
        r = {"type": "kv." + op, "app_id": self.spell(app), "collection": self.rng.choice(COLLECTIONS), "key": "k"}
        if op != "delete":
            r["value"] = self.rng.choice([None, 1, [1, "\u00e9"], {"k": "v"}])
        return self.emit(r)


def main(argv):
    seed = int(argv[0]) if argv else 1
    records = int(argv[1]) if len(argv) > 1 else 1000
    g = Gen(seed)
    for _ in range(records):
        g.step()
    sys.stdout.write("\n".join(g.out) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
