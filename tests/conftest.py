"""Shared fixtures: the real Prometheus binary and one backfilled server per test session.

Tests that need Prometheus skip when the binary is missing, unless the environment sets
``ROLLOUTLAB_REQUIRE_PROMETHEUS=1`` (CI does), in which case they fail.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from rolloutlab.errors import SourceError
from rolloutlab.sources.openmetrics import to_openmetrics
from rolloutlab.sources.presets import PRESETS
from rolloutlab.sources.promserver import PrometheusServer, find_binaries
from rolloutlab.sources.recording import Recording
from rolloutlab.sources.simulate import simulate

#: Presets round-tripped through the server, each in its own namespace ``rt-<preset>``.
ROUND_TRIP_PRESETS = sorted(name for name, p in PRESETS.items() if p.name == name)
PODS = 3
SCRAPES_PER_STEP = 4

#: A raw counter with a reset (5 → 9 → 2): Prometheus' increase() must see +5, +4, +2, +4.
RESET_OPENMETRICS = """# TYPE reset_demo counter
reset_demo_total{job="reset"} 0 1768212000
reset_demo_total{job="reset"} 5 1768212060
reset_demo_total{job="reset"} 9 1768212120
reset_demo_total{job="reset"} 2 1768212180
reset_demo_total{job="reset"} 6 1768212240
# EOF
"""


#: the user's settings rolloutlab reads (rolloutlab.config), cleared for every test
USER_SETTINGS = (
    "ROLLOUTLAB_URL",
    "ROLLOUTLAB_PRESET",
    "ROLLOUTLAB_HEADERS",
    "ROLLOUTLAB_BEARER_TOKEN",
    "ROLLOUTLAB_BEARER_TOKEN_FILE",
    "ROLLOUTLAB_SLACK_WEBHOOK",
    "ROLLOUTLAB_SLACK_WEBHOOK_FILE",
    "ROLLOUTLAB_CONFIG",
)


@pytest.fixture(autouse=True)
def _no_user_state(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tests never read or write the user's files: the audit log defaults to a temporary
    file, and no config file or connection setting of the user's applies."""
    home = tmp_path_factory.mktemp("user")
    for name in USER_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ROLLOUTLAB_AUDIT_LOG", str(home / "audit.jsonl"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))


@pytest.fixture(scope="session")
def prometheus_binary() -> Path:
    """Path of the prometheus binary; skip (or fail in CI) when it is not installed."""
    try:
        return find_binaries()[0]
    except SourceError as exc:
        if os.environ.get("ROLLOUTLAB_REQUIRE_PROMETHEUS") == "1":
            pytest.fail(f"ROLLOUTLAB_REQUIRE_PROMETHEUS=1 but {exc}")
        pytest.skip(str(exc))


@dataclass(frozen=True)
class Backfilled:
    """The running server and the recordings it holds."""

    server: PrometheusServer
    main: Recording  # istio, namespace "test", target "podinfo", 200 min at 60 s
    ab: Recording  # the "ab" experiment, istio, namespace "ab", variants A/B
    presets: dict[str, Recording]  # per preset, namespace "rt-<preset>"

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture(scope="session")
def backfilled(prometheus_binary: Path) -> Iterator[Backfilled]:
    """One real Prometheus for the session, backfilled with simulated rollouts."""
    main = simulate("healthy", seed=11, duration_min=200)
    ab = simulate("ab", seed=5)
    presets = {name: simulate("healthy", seed=3, duration_min=60) for name in ROUND_TRIP_PRESETS}
    texts = [
        to_openmetrics(main, preset="istio", target="podinfo", namespace="test"),
        to_openmetrics(ab, preset="istio", target="shop", namespace="ab"),
        RESET_OPENMETRICS,
    ]
    texts += [
        to_openmetrics(
            rec,
            preset=name,
            target="podinfo",
            namespace=f"rt-{name}",
            pods_per_variant=PODS,
            scrapes_per_step=SCRAPES_PER_STEP,
        )
        for name, rec in presets.items()
    ]
    with PrometheusServer(openmetrics=texts) as server:
        yield Backfilled(server, main, ab, presets)
