"""Pause downstream triggers while a backfill writes, held by leases that cannot be forgotten.

The users' fear (USERS.md, decision 1): their live Phase 3 -> Phase 4 trigger must not fire
while Phase 3 is being backfilled, and someone might forget to switch it back on. So a pause
is never a flag: it is a *lease* -- a Redis key with a TTL that its holder (a run, or a person
at the CLI) renews while it lives. When the holder finishes it releases the lease; when it
crashes the lease expires by itself and the trigger is enabled again without anyone acting.

Several holders may pause the same trigger (two runs, a run and an operator); the trigger is
enabled only when none of their leases is live. Each lease is its own key, so its expiry is
Redis's job and needs no sweeper.

Trigger names are `phase{N}->phase{N+1}`: the trigger that starts phase N+1 after phase N.
A pipeline knows one per phase it has (`known_triggers`); on a command line the name must be
quoted (`'phase3->phase4'`), or bash reads `>` as a redirect and passes `phase3-`.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import redis

from backfill.errors import BadInput, CannotConnect
from backfill.settings import Settings, redact_url

if TYPE_CHECKING:
    from backfill.spec import PipelineSpec

log = logging.getLogger(__name__)


def trigger_name(phase: int) -> str:
    return f"phase{phase}->phase{phase + 1}"


def triggers_for_phases(phases: Iterable[int]) -> list[str]:
    """The triggers a run writing `phases` must pause: `phase{N}->phase{N+1}` for each N.

    Writing phase N makes phase N+1's lookback windows incomplete, so what phase N would set
    off downstream must wait. The trigger *into* phase N (`phase{N-1}->phase{N}`) is left on:
    it makes the live pipeline process tonight's date, which a historical backfill does not
    own, and pausing it would stop the nightly pipeline for no gain in safety.
    """
    return [trigger_name(p) for p in sorted({int(p) for p in phases})]


def known_triggers(spec: PipelineSpec) -> list[str]:
    """Every trigger a run of `spec` can pause: the one out of each phase the pipeline has.

    A pause under any other name protects nothing (no run releases it, no live trigger asks
    for it) while looking, in `triggers status`, as if it did; so the CLI accepts only these.
    """
    return triggers_for_phases({p.phase for p in spec.processors.values()})


def check_trigger_name(name: str, known: Sequence[str], pipeline: str) -> None:
    """Refuse (BadInput, exit 2) a name not in `known`, naming the known ones.

    The usual cause is bash: `triggers pause phase3->phase4` unquoted passes `phase3-` and
    sends the command's output to a file named `phase4`, so the hint says how to quote and
    which stray file to remove.
    """
    if name in known:
        return
    listed = ", ".join(f"'{k}'" for k in known) or "none (the pipeline has no phases)"
    cut = [k for k in known if name.endswith("-") and k.startswith(name) and k[len(name)] == ">"]
    if cut:
        stray = cut[0][len(name) + 1:]
        hint = (f"quote the name: '{cut[0]}'; unquoted, bash read '>' as a redirect and wrote "
                f"this command's output to a file named {stray}, which you can delete")
    else:
        hint = "quote the name, e.g. 'phase3->phase4'"
    raise BadInput(f"unknown trigger '{name}' in pipeline {pipeline}; known: {listed}", hint=hint)


def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat(timespec="seconds")


class Triggers:
    """Pause leases per trigger, in Redis. The connection is passed in, never global."""

    names_key = "backfill:triggers"                      # SET of every trigger ever paused
    holders_key = "backfill:trigger:{name}:holders"      # SET of holders that paused it (may be stale)
    lease_key = "backfill:trigger:{name}:lease:{holder}"  # HASH holder/reason/since/until, with a TTL

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def _lease(self, name: str, holder: str) -> str:
        return self.lease_key.format(name=name, holder=holder)

    def _now(self) -> float:
        # The Redis clock, so `until` agrees with the TTL that actually ends the lease.
        seconds, micros = self.client.time()
        return seconds + micros / 1_000_000

    def pause(self, name: str, holder: str, ttl_seconds: float, reason: str = "") -> None:
        """Pause `name` for `ttl_seconds` on behalf of `holder` (pausing again extends it)."""
        if ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be > 0")
        now = self._now()
        key = self._lease(name, holder)
        pipe = self.client.pipeline(transaction=True)
        pipe.hsetnx(key, "since", repr(now))
        pipe.hset(key, mapping={"holder": holder, "reason": reason, "until": repr(now + ttl_seconds)})
        pipe.pexpire(key, int(ttl_seconds * 1000))
        pipe.sadd(self.holders_key.format(name=name), holder)
        pipe.sadd(self.names_key, name)
        pipe.execute()
        log.info("trigger %s paused by %s for %gs", name, holder, ttl_seconds)

    def renew(self, name: str, holder: str, ttl_seconds: float) -> bool:
        """Extend `holder`'s live lease; False if it has none (expired, released, never held)."""
        key = self._lease(name, holder)
        until = self._now() + ttl_seconds
        # Lua keeps "still exists" and "extend" one step: a lease expiring between the two
        # must not be resurrected as a hash without holder or since.
        script = """
        if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
        redis.call('HSET', KEYS[1], 'until', ARGV[1])
        redis.call('PEXPIRE', KEYS[1], ARGV[2])
        return 1
        """
        return bool(self.client.eval(script, 1, key, repr(until), int(ttl_seconds * 1000)))

    def release(self, name: str, holder: str) -> bool:
        """Drop `holder`'s pause; True if it had a live one."""
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(self._lease(name, holder))
        pipe.srem(self.holders_key.format(name=name), holder)
        deleted, _ = pipe.execute()
        if deleted:
            log.info("trigger %s released by %s", name, holder)
        return bool(deleted)

    def release_all(self, name: str) -> list[str]:
        """Force-release every lease on `name` (an operator's override); returns the holders."""
        released = [lease["holder"] for lease in self.leases(name)]
        for holder in self._holders(name):
            self.release(name, holder)
        return released

    def _holders(self, name: str) -> list[str]:
        return sorted(_text(h) for h in self.client.smembers(self.holders_key.format(name=name)))

    def leases(self, name: str) -> list[dict[str, Any]]:
        """The live leases on `name`, the one ending last first; prunes holders whose lease expired."""
        out: list[dict[str, Any]] = []
        stale: list[str] = []
        for holder in self._holders(name):
            data = {_text(k): _text(v) for k, v in self.client.hgetall(self._lease(name, holder)).items()}
            if not data:
                stale.append(holder)
                continue
            out.append({"holder": data.get("holder", holder), "reason": data.get("reason", ""),
                        "since": float(data.get("since", 0) or 0), "until": float(data.get("until", 0) or 0)})
        if stale:
            self.client.srem(self.holders_key.format(name=name), *stale)
        out.sort(key=lambda lease: -lease["until"])
        return out

    def live_leases(self, name: str) -> list[dict[str, Any]]:
        """The live leases on `name`, like `leases` but read-only (no pruning): for askers that
        must not write, such as `triggers check` and `triggers serve` under a read-only account."""
        out: list[dict[str, Any]] = []
        for holder in self._holders(name):
            data = {_text(k): _text(v) for k, v in self.client.hgetall(self._lease(name, holder)).items()}
            if data:
                out.append({"holder": data.get("holder", holder), "reason": data.get("reason", ""),
                            "since": float(data.get("since", 0) or 0), "until": float(data.get("until", 0) or 0)})
        out.sort(key=lambda lease: -lease["until"])
        return out

    def is_enabled(self, name: str) -> bool:
        return not self.leases(name)

    def names(self) -> list[str]:
        return sorted(_text(n) for n in self.client.smembers(self.names_key))

    def status(self) -> list[dict[str, Any]]:
        """One row per known trigger: name, paused, holder, reason, since, until, leases.

        holder/reason/since/until describe the lease that ends last (the one that decides
        when the trigger comes back on); `leases` lists all of them. Times are ISO-8601 UTC.
        """
        rows: list[dict[str, Any]] = []
        for name in self.names():
            leases = [{**lease, "since": _iso(lease["since"]), "until": _iso(lease["until"])}
                      for lease in self.leases(name)]
            top = leases[0] if leases else {}
            rows.append({"name": name, "paused": bool(leases), "holder": top.get("holder"),
                         "reason": top.get("reason"), "since": top.get("since"), "until": top.get("until"),
                         "leases": leases})
        return rows


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


Unreachable = Literal["open", "closed", "raise"]


@dataclass(frozen=True)
class TriggerAnswer:
    """The answer to "may the live pipeline fire `name` now?", as `triggers check` and `triggers serve` give it.

    `may_fire` is the decision after `on_unreachable` was applied; `reachable` False means no
    backfill Redis answered (or none is configured), so the decision is the caller's policy,
    not a fact. `leases` are the live pauses (holder, reason, since, until; ISO-8601 UTC).
    """

    name: str
    may_fire: bool
    reachable: bool
    on_unreachable: str
    leases: tuple[dict[str, Any], ...] = ()
    error: str = ""

    @property
    def exit_code(self) -> int:
        """0 may fire, 1 paused, 3 no answer from Redis and the policy is to fail closed."""
        if not self.reachable:
            return 0 if self.may_fire else 3
        return 0 if self.may_fire else 1

    @property
    def http_status(self) -> int:
        """200 may fire, 423 Locked while paused, 503 no answer from Redis under a fail-closed policy."""
        return {0: 200, 1: 423}.get(self.exit_code, 503)

    def to_json(self) -> dict[str, Any]:
        return {"trigger": self.name, "may_fire": self.may_fire, "paused": bool(self.leases),
                "reachable": self.reachable, "on_unreachable": self.on_unreachable,
                "leases": list(self.leases), "error": self.error or None}

    def one_line(self) -> str:
        """What a person reads: the decision, and while paused who holds it, why and until when."""
        if not self.reachable:
            verdict = "may fire" if self.may_fire else "treated as paused"
            return f"{self.name}: {verdict} -- {self.error} (--on-unreachable {self.on_unreachable})"
        if self.may_fire:
            return f"{self.name}: may fire (no backfill holds a pause on it)"
        held = "; ".join(f"{lease['holder']} until {lease['until']}"
                         + (f" ({lease['reason']})" if lease.get("reason") else "") for lease in self.leases)
        return f"{self.name}: paused by {held}"


def ask(name: str, client: redis.Redis | None, *, on_unreachable: Literal["open", "closed"] = "closed",
        where: str = "") -> TriggerAnswer:
    """Whether `name` may fire now, read from `client` (None: no backfill Redis is configured).

    Read-only: it never prunes, pauses or starts anything, so a live orchestrator asking
    every minute changes nothing. `where` (a redacted URL) goes into the error text.
    """
    if client is None:
        return TriggerAnswer(name, on_unreachable == "open", False, on_unreachable,
                             error="no backfill Redis configured (BACKFILL_REDIS_URL or --redis-url)")
    try:
        leases = Triggers(client).live_leases(name)
    except redis.RedisError as exc:
        return TriggerAnswer(name, on_unreachable == "open", False, on_unreachable,
                             error=f"Redis at {where or 'the configured URL'} does not answer ({type(exc).__name__})")
    shown = tuple({**lease, "since": _iso(lease["since"]), "until": _iso(lease["until"])} for lease in leases)
    return TriggerAnswer(name, not leases, True, on_unreachable, shown)


def downstream_enabled(name: str, redis_url: str | None = None, *, on_unreachable: Unreachable = "open",
                       strict: bool = False) -> bool:
    """Whether the live pipeline may fire trigger `name` now (e.g. "phase3->phase4").

    The URL is `redis_url`, else BACKFILL_REDIS_URL, else the local Redis that `backfill`
    started under BACKFILL_HOME (it is never started from here). With none of them there is
    no backfill to respect: True.

    If that Redis does not answer, the caller chooses with `on_unreachable`:
    - "open" (default): True, with a warning logged. The nightly pipeline is production and
      must not stop because the backfill tool's Redis is down; and a backfill cannot make
      progress without that Redis either (it is its broker), so no phase is being rewritten
      while it is unreachable.
    - "closed": False, with a warning logged. For pipelines that prefer a skipped night to a
      run on possibly incomplete windows (a run writing through another broker, or Redis
      down for a minute in the middle of a wave).
    - "raise": CannotConnect, for callers that handle it themselves. `strict=True` is the
      older spelling of this and is kept for callers already written.
    A fail-closed caller should pass `redis_url` (or set BACKFILL_REDIS_URL): with no URL at
    all there is nothing to fail on, and the answer is True.
    """
    if on_unreachable not in ("open", "closed", "raise"):
        raise ValueError(f"on_unreachable must be 'open', 'closed' or 'raise', got {on_unreachable!r}")
    if strict:
        on_unreachable = "raise"
    settings = Settings()  # the one reader of BACKFILL_* (redis url, home)
    url = redis_url or settings.redis_url_value
    if not url:
        from backfill.localredis import local_url

        url = local_url(settings) or ""
    if not url:
        return True
    client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=5)
    try:
        return Triggers(client).is_enabled(name)
    except redis.RedisError as exc:
        if on_unreachable == "raise":
            raise CannotConnect(f"Redis at {redact_url(url)} does not answer ({type(exc).__name__})",
                                hint="cannot tell whether a backfill paused this trigger") from None
        enabled = on_unreachable == "open"
        log.warning("Redis at %s does not answer (%s); trigger %s treated as %s (fail %s)",
                    redact_url(url), type(exc).__name__, name, "enabled" if enabled else "paused",
                    on_unreachable)
        return enabled
    finally:
        client.close()
