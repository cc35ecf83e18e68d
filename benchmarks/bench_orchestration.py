"""Orchestration overhead: 2,000 no-op tasks through the engine vs a plain Celery chord.

Both go through the same real redis-server and the same real worker process, in one run, so
the ratio isolates what the engine adds: run state in Redis per task (one Lua call to begin,
one to settle, release the children and pump the next ready tasks), dependency-driven dispatch
from Redis instead of a chord, bulk run-history writes. Target: ratio >= 0.8. `--commands`
counts Redis commands per task on each side instead (where a no-op task's time goes).

    python benchmarks/bench_orchestration.py [--tasks 2000] [--waves 4] [--concurrency 8] [--commands]
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

from celery import chord, group

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from backfill import engine  # noqa: E402
from backfill.planner import Plan, PlanRequest, Task  # noqa: E402
from backfill.planner.model import Estimates  # noqa: E402
from backfill.settings import Settings  # noqa: E402
from backfill.state import RedisStateStore, RunRecord, RunStatus  # noqa: E402
from benchmarks.services import backfill_env, celery_worker, redis_server  # noqa: E402


def synthetic_plan(n: int, waves: int) -> Plan:
    """`n` no-op tasks in `waves` waves; each task depends on its twin in the previous wave."""
    per = n // waves
    start = dt.date(2000, 1, 1)
    out: list[tuple[Task, ...]] = []
    for w in range(waves):
        wave = []
        for i in range(per):
            day = start + dt.timedelta(days=i)
            deps = (f"noop{w - 1}@{day.isoformat()}",) if w else ()
            wave.append(Task(f"noop{w}@{day.isoformat()}", f"noop{w}", 0, "bench", (day,), deps, False, w, 0.0))
        out.append(tuple(wave))
    est = Estimates(n, waves, 0.0, 0.0, 0.0, 0.0, 1)
    return Plan(request=PlanRequest(ranges=((start, start + dt.timedelta(days=per)),)), waves=tuple(out),
                estimates=est, warnings=())


def wait_worker(app: object, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if app.control.ping(timeout=0.5):  # type: ignore[attr-defined]
            return
    raise RuntimeError("worker did not come up")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=2000)
    ap.add_argument("--waves", type=int, default=4)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--commands", action="store_true", help="count Redis commands per task instead of timing")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-orch-") as scratch, redis_server(Path(scratch)) as url:
        tmp = Path(scratch)
        env = backfill_env(url, tmp / "wh.duckdb", tmp / "home")
        with celery_worker(env, tmp / "home", "bench", args.concurrency):
            from workers.factory import create_app
            from workers.tasks import CeleryDispatcher

            settings = Settings(redis_url=url, warehouse=env["BACKFILL_WAREHOUSE"])
            app = create_app(settings)
            wait_worker(app)
            store = RedisStateStore.from_url(url)

            # warm-up, so neither side pays for connection set-up
            chord(group(app.signature("backfill.noop", args=(i,), immutable=True) for i in range(50)),
                  app.signature("backfill.noop_done")).apply_async().get(timeout=60)

            def plain_chord() -> float:
                t0 = time.perf_counter()
                res = chord(group(app.signature("backfill.noop", args=(i,), immutable=True) for i in range(args.tasks)),
                            app.signature("backfill.noop_done")).apply_async()
                assert res.get(timeout=600) == args.tasks
                return time.perf_counter() - t0

            def through_engine() -> float:
                plan = synthetic_plan(args.tasks, args.waves)
                record = RunRecord(run_id=engine.new_run_id(), pipeline="-", request=plan.request.to_json(), noop=True)
                t0 = time.perf_counter()
                engine.start_run(store, CeleryDispatcher(app), plan, record)
                while True:
                    run = store.get_run(record.run_id)
                    if run is not None and run.status is not RunStatus.running:
                        break
                    time.sleep(0.02)
                elapsed = time.perf_counter() - t0
                assert run.status is RunStatus.succeeded, run.status
                assert len(store.queued(record.run_id)) == len(plan)
                return elapsed

            def commands() -> dict[str, int]:
                stats = store.client.info("commandstats")
                return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}

            def per_task(measure: object) -> tuple[float, dict[str, float]]:
                """Seconds, and Redis commands per task by name (where a task's time goes: round trips)."""
                before = commands()
                seconds = measure()  # type: ignore[operator]
                after = commands()
                return seconds, {k: (v - before.get(k, 0)) / args.tasks for k, v in after.items()
                                 if v - before.get(k, 0) >= args.tasks * 0.05}

            if args.commands:
                for name, measure in (("chord", plain_chord), ("engine", through_engine)):
                    seconds, calls = per_task(measure)
                    top = ", ".join(f"{k} {v:.1f}" for k, v in sorted(calls.items(), key=lambda kv: -kv[1]))
                    print(f"{name:6}: {seconds:6.2f}s, Redis commands per task {sum(calls.values()):.1f}: {top}")
                return

            chord_runs: list[float] = []
            engine_runs: list[float] = []
            for _ in range(args.rounds):  # interleaved, so load on the machine hits both alike
                chord_runs.append(plain_chord())
                engine_runs.append(through_engine())
            for i, (c, e) in enumerate(zip(chord_runs, engine_runs, strict=True)):
                print(f"round {i + 1}: chord {args.tasks / c:7.1f} tasks/s   engine {args.tasks / e:7.1f} tasks/s   "
                      f"ratio {c / e:.2f}")
            chord_rate = args.tasks / min(chord_runs)
            engine_rate = args.tasks / min(engine_runs)
            print(f"plain celery chord : {args.tasks} no-op tasks, best {min(chord_runs):6.2f}s = "
                  f"{chord_rate:7.1f} tasks/s")
            print(f"backfill engine    : {args.tasks} no-op tasks, best {min(engine_runs):6.2f}s = "
                  f"{engine_rate:7.1f} tasks/s "
                  f"({args.waves} dependency levels: run state per task, dispatch by dependency)")
            print(f"ratio engine/chord : {engine_rate / chord_rate:.2f} (target >= 0.8); "
                  f"worker: threads x{args.concurrency}")


if __name__ == "__main__":
    main()
