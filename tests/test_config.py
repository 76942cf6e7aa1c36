"""Defaults without retyping: flags > environment > config file > built-in defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from rolloutlab.config import (
    ENV_BEARER,
    ENV_BEARER_FILE,
    ENV_CONFIG,
    ENV_HEADERS,
    ENV_PRESET,
    ENV_SLACK,
    ENV_URL,
    config_path,
    redact,
    redact_url,
    settings,
    split_credentials,
)
from rolloutlab.errors import SpecError


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config file at the XDG location, with a token file beside it."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    token = write(tmp_path / "token", "from-config-file\n")
    return write(
        tmp_path / "xdg" / "rolloutlab" / "config.yaml",
        "url: http://config:9090\n"
        "preset: linkerd\n"
        "headers: {X-Scope-OrgID: config-tenant, X-Team: sre}\n"
        f"bearer_token_file: {token}\n",
    )


def test_the_config_file_is_found_under_xdg_config_home(config: Path) -> None:
    assert config_path() == config
    resolved = settings()
    assert (resolved.url, resolved.preset, resolved.bearer) == (
        "http://config:9090",
        "linkerd",
        "from-config-file",
    )
    assert resolved.headers == {"X-Scope-OrgID": "config-tenant", "X-Team": "sre"}
    assert resolved.origin == {
        "url": "config",
        "preset": "config",
        "headers": "config",
        "bearer": "config",
    }


def test_environment_beats_config_file(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_URL, "http://env:9090")
    monkeypatch.setenv(ENV_PRESET, "nginx")
    monkeypatch.setenv(ENV_HEADERS, "X-Scope-OrgID=env-tenant;X-Extra: 1")
    monkeypatch.setenv(ENV_BEARER, "from-env")
    resolved = settings()
    assert (resolved.url, resolved.preset, resolved.bearer) == (
        "http://env:9090",
        "nginx",
        "from-env",
    )
    # headers merge by name: the environment's win, the config's others stay
    assert resolved.headers == {"X-Scope-OrgID": "env-tenant", "X-Team": "sre", "X-Extra": "1"}


def test_flags_beat_environment(
    config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_URL, "http://env:9090")
    monkeypatch.setenv(ENV_BEARER, "from-env")
    monkeypatch.setenv(ENV_HEADERS, "X-Scope-OrgID=env-tenant")
    headers = write(tmp_path / "headers", "# secret headers\nAuthorization: Basic Zm9v\n")
    resolved = settings(
        url="http://flag:9090",
        preset="istio",
        headers=["X-Scope-OrgID=flag-tenant"],
        headers_file=headers,
        bearer_file=write(tmp_path / "flag-token", "from-flag"),
    )
    assert (resolved.url, resolved.preset, resolved.bearer) == (
        "http://flag:9090",
        "istio",
        "from-flag",
    )
    assert resolved.headers == {
        "X-Scope-OrgID": "flag-tenant",
        "X-Team": "sre",
        "Authorization": "Basic Zm9v",
    }
    assert set(resolved.origin.values()) == {"flag"}


def test_defaults_when_nothing_is_set() -> None:
    resolved = settings()
    assert (resolved.url, resolved.preset, resolved.bearer, resolved.headers) == (
        None,
        None,
        None,
        {},
    )


def test_secret_files_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_BEARER_FILE, str(write(tmp_path / "t", "tok-from-file\n")))
    monkeypatch.setenv(ENV_SLACK, "https://hooks.slack.com/services/T0/B0/XYZsecret")
    resolved = settings()
    assert resolved.bearer == "tok-from-file"
    assert resolved.slack_webhook == "https://hooks.slack.com/services/T0/B0/XYZsecret"
    assert "tok-from-file" not in repr(resolved) and "XYZsecret" not in repr(resolved)


def test_an_explicit_config_must_exist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SpecError, match="does not exist"):
        settings(config=tmp_path / "missing.yaml")
    monkeypatch.setenv(ENV_CONFIG, str(tmp_path / "also-missing.yaml"))
    with pytest.raises(SpecError, match="also-missing.yaml does not exist"):
        settings()


#: 9 ** 9 values once the aliases are expanded, in a few hundred bytes
ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True)
)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("url: http://a\ntoken: abc\n", r"unknown keys \['token'\].*secrets only as \*_file"),
        ("- a\n- b\n", "must hold a mapping"),
        ("url: [1, 2]\n", "url must be a string"),
        ("headers: {a: [1]}\n", "headers must map names to strings"),
        (ALIAS_BOMB, "expand"),  # the shared bounded YAML reader of specs
        ("url: a\nurl: b\n", "url.*twice|duplicate"),
        ("url: 'unclosed\n", "not valid YAML"),
        ("url: a\n---\nurl: b\n", "2 YAML documents"),
    ],
)
def test_bad_config_files_are_refused(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path / "c.yaml", text)
    with pytest.raises(SpecError, match=message):
        settings(config=path)


def test_empty_secret_file_and_bad_header(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="is empty"):
        settings(bearer_file=write(tmp_path / "empty", "\n"))
    with pytest.raises(SpecError, match="must look like Key=Value"):
        settings(headers=["no separator"])


def test_redaction() -> None:
    assert (
        redact_url("https://bob:hunter2@prom.example:9090/x") == "https://***@prom.example:9090/x"
    )
    assert (
        redact_url("http://prom/?x=1&access_token=abc&y=2")
        == "http://prom/?x=1&access_token=***&y=2"
    )
    assert redact("post to https://hooks.slack.com/services/T0/B0/abc failed") == (
        "post to https://hooks.slack.com/services/*** failed"
    )
    url, credentials = split_credentials("http://bob:p%40ss@127.0.0.1:9090/prom")
    assert (url, credentials) == ("http://127.0.0.1:9090/prom", ("bob", "p@ss"))
    assert redact("the password is p@ss") == "the password is ***"  # remembered


def test_fetch_takes_its_url_from_flag_then_env_then_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Against the fake Prometheus (real HTTP): only one of the three URLs answers."""
    from fake_prometheus import FakePrometheus
    from kube_emulator import closed_port

    from rolloutlab.cli import main

    dead = f"http://127.0.0.1:{closed_port()}"
    args = ["fetch", "--target", "podinfo", "--namespace", "test", "--timeout", "2"]
    args += ["--start", "2026-01-12T10:00Z", "--end", "2026-01-12T10:05Z"]
    with FakePrometheus() as fake:
        config = write(tmp_path / "c.yaml", f"url: {fake.url}\n")
        monkeypatch.setenv(ENV_CONFIG, str(config))
        assert main([*args, "-o", str(tmp_path / "a.parquet")]) == 0  # the config's

        monkeypatch.setenv(ENV_URL, dead)
        assert main([*args, "-o", str(tmp_path / "b.parquet")]) == 2  # env beats config
        assert f"cannot reach Prometheus at {dead}" in capsys.readouterr().err

        assert main([*args, "--url", fake.url, "-o", str(tmp_path / "c.parquet")]) == 0  # flag

    monkeypatch.delenv(ENV_URL)
    monkeypatch.delenv(ENV_CONFIG)
    assert main([*args, "-o", str(tmp_path / "d.parquet")]) == 2
    assert "no Prometheus URL: pass --url" in capsys.readouterr().err
