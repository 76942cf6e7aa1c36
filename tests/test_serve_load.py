"""The load benchmark (benchmarks/serve_load.py) in a short form: a real Prometheus, the
service in its own process, every phase run; no timing is asserted, only that every
answer was a webhook answer (200 or 412) and that every canary was judged."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import serve_load  # noqa: E402


@pytest.mark.prometheus
def test_short_load_run(prometheus_binary):
    lines: list[str] = []
    figures = serve_load.run(
        n_canaries=4, requests_total=80, clients=4, minutes=15, out=lines.append
    )
    assert figures["healthz"]["codes"] == {200: 80}
    for phase in ("cold", "warm"):
        assert set(figures[phase]["codes"]) <= {200, 412}, figures[phase]
    assert sum(figures["warm"]["codes"].values()) == 80
    assert figures["canaries_exported"] == 4
    assert figures["service_rss_mib"] > 0
    assert any(line.startswith("warm ") for line in lines)
