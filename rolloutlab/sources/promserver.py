"""A throwaway real Prometheus server on 127.0.0.1, for tests, the demo and notebooks.

``PrometheusServer`` backfills OpenMetrics text with ``promtool`` into a fresh temporary data
directory, starts ``prometheus`` on a free loopback port (never 9090, never the system's data
directory), waits for ``/-/ready`` and stops it (and removes the directory) on exit::

    with PrometheusServer(openmetrics=[to_openmetrics(rec)]) as server:
        Prometheus(server.url).fetch(...)

``scrape_targets=["127.0.0.1:8000"]`` makes it scrape live targets every ``scrape_interval``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

import requests

from rolloutlab.errors import SourceError

INSTALL_HINT = "apt-get install -y --no-install-recommends prometheus"


def find_binaries() -> tuple[Path, Path]:
    """Paths of ``prometheus`` and ``promtool`` (env ``ROLLOUTLAB_PROMETHEUS`` / ``_PROMTOOL``
    first, then ``PATH``); SourceError with the install command when missing."""
    found = []
    for name in ("prometheus", "promtool"):
        path = os.environ.get(f"ROLLOUTLAB_{name.upper()}") or shutil.which(name)
        if not path or not Path(path).is_file():
            raise SourceError(
                f"the {name!r} binary was not found. Install it with: {INSTALL_HINT} "
                f"(as root), or set ROLLOUTLAB_{name.upper()} to its path."
            )
        found.append(Path(path))
    return found[0], found[1]


def free_port() -> int:
    """A free TCP port on 127.0.0.1, never Prometheus' default 9090."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port != 9090:
            return port


class PrometheusServer:
    """A real ``prometheus`` process on a free 127.0.0.1 port with a fresh temp data dir.

    ``openmetrics`` are texts (or paths of files) backfilled with promtool before the start;
    ``scrape_targets`` are ``host:port`` endpoints scraped every ``scrape_interval``. Use it
    as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        *,
        openmetrics: Sequence[str | Path] = (),
        scrape_targets: Sequence[str] = (),
        scrape_interval: str = "15s",
        startup_timeout: float = 30.0,
    ) -> None:
        self.openmetrics = list(openmetrics)
        self.scrape_targets = list(scrape_targets)
        self.scrape_interval = scrape_interval
        self.startup_timeout = startup_timeout
        self.port: int | None = None
        self._dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` of the running server."""
        if self.port is None:
            raise SourceError("PrometheusServer is not started; use it in a 'with' block")
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """Process id of the running server (None when stopped)."""
        return self._proc.pid if self._proc else None

    @property
    def data_dir(self) -> Path | None:
        """The temporary TSDB directory (removed on stop)."""
        return self._dir / "data" if self._dir else None

    @property
    def _root(self) -> Path:
        """The temporary directory of a started server."""
        if self._dir is None:
            raise SourceError("PrometheusServer is not started; use it in a 'with' block")
        return self._dir

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = self.url if self._proc else "stopped"
        return f"<PrometheusServer {state}>"

    def start(self) -> PrometheusServer:
        """Backfill, start, and wait until ``/-/ready`` answers (SourceError on failure)."""
        if self._proc is not None:
            return self
        prometheus, promtool = find_binaries()
        self._dir = Path(tempfile.mkdtemp(prefix="rolloutlab-prometheus-"))
        try:
            data = self._dir / "data"
            data.mkdir()
            for i, item in enumerate(self.openmetrics):
                self._backfill(promtool, item, data, i)
            config = self._dir / "prometheus.yml"
            config.write_text(self._config())
            for _attempt in range(3):
                if self._launch(prometheus, config, data):
                    return self
            raise SourceError(f"prometheus did not start:\n{self._log_tail()}")
        except BaseException:
            self.stop()
            raise

    def _backfill(self, promtool: Path, item: str | Path, data: Path, i: int) -> None:
        if isinstance(item, Path):
            path = item
        else:
            path = self._root / f"backfill-{i}.om"
            path.write_text(item)
        proc = subprocess.run(
            [
                str(promtool),
                "tsdb",
                "create-blocks-from",
                "openmetrics",
                "-q",
                str(path),
                str(data),
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
        if proc.returncode != 0:
            raise SourceError(
                f"promtool could not backfill {path}: {(proc.stderr or proc.stdout).strip()}"
            )

    def _config(self) -> str:
        lines = ["global:", f"  scrape_interval: {self.scrape_interval}", "scrape_configs:"]
        if self.scrape_targets:
            targets = ", ".join(f'"{t}"' for t in self.scrape_targets)
            lines += [
                "  - job_name: rolloutlab",
                f"    scrape_interval: {self.scrape_interval}",
                f"    static_configs: [{{targets: [{targets}]}}]",
            ]
        else:
            lines[-1] += " []"
        return "\n".join(lines) + "\n"

    def _launch(self, prometheus: Path, config: Path, data: Path) -> bool:
        """Start on a fresh port; False if the port was taken meanwhile (retry)."""
        self.port = free_port()
        self._log = open(self._root / "prometheus.log", "wb")  # noqa: SIM115 (closed in stop)
        self._proc = subprocess.Popen(
            [
                str(prometheus),
                f"--config.file={config}",
                f"--storage.tsdb.path={data}",
                "--storage.tsdb.retention.time=100y",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        probe = requests.Session()
        probe.trust_env = False  # never send loopback traffic through a proxy
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                taken = "address already in use" in self._log_tail()
                self._reap()
                if taken:
                    return False
                raise SourceError(f"prometheus exited at start:\n{self._log_tail()}")
            try:
                if probe.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return True
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise SourceError(
            f"prometheus was not ready within {self.startup_timeout:g} s:\n{self._log_tail()}"
        )

    def _log_tail(self) -> str:
        path = self._dir / "prometheus.log" if self._dir else None
        if path is None or not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-20:])

    def _reap(self) -> None:
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.terminate()
                try:
                    self._proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait(timeout=10)
            self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def stop(self) -> None:
        """Stop the process and remove the temporary directory (safe to call twice)."""
        self._reap()
        self.port = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None


__all__ = ["INSTALL_HINT", "PrometheusServer", "find_binaries", "free_port"]
