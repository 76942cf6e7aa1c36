"""Secrets and defaults: credentials kept out of every output, options without retyping.

Secrets (a bearer token, header values, the Slack webhook) come from files or the
environment, never only from the command line, where ``ps`` and shell history show
them. Every URL the project prints, stores or sends goes through :func:`redact_url`
(credentials and secret-looking query values become ``***``), and free text through
:func:`redact`, which also masks every secret read by :func:`read_secret`.

Defaults come from, highest first: command-line flags, the environment
(``ROLLOUTLAB_URL``, ``ROLLOUTLAB_PRESET``, ``ROLLOUTLAB_HEADERS``,
``ROLLOUTLAB_BEARER_TOKEN`` / ``_FILE``, ``ROLLOUTLAB_SLACK_WEBHOOK`` / ``_FILE``), the
config file (``--config``, else ``$ROLLOUTLAB_CONFIG``, else
``$XDG_CONFIG_HOME/rolloutlab/config.yaml``, else ``~/.config/rolloutlab/config.yaml``),
then the built-in defaults. See :func:`settings`.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from rolloutlab.errors import SpecError

ENV_URL = "ROLLOUTLAB_URL"
ENV_PRESET = "ROLLOUTLAB_PRESET"
ENV_HEADERS = "ROLLOUTLAB_HEADERS"
ENV_BEARER = "ROLLOUTLAB_BEARER_TOKEN"
ENV_BEARER_FILE = "ROLLOUTLAB_BEARER_TOKEN_FILE"
ENV_SLACK = "ROLLOUTLAB_SLACK_WEBHOOK"
ENV_SLACK_FILE = "ROLLOUTLAB_SLACK_WEBHOOK_FILE"
ENV_CONFIG = "ROLLOUTLAB_CONFIG"
#: keys a config file may hold; secrets only as files, so the config itself holds none
CONFIG_KEYS = ("url", "preset", "headers", "bearer_token_file", "slack_webhook_file")
MASK = "***"
MAX_CONFIG_BYTES = 64 * 1024

_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s?#]*@")
_SECRET_PARAM = re.compile(
    r"(?P<key>[?&][^=&#\s]*(?:token|key|secret|passw|auth|signature|sig|credential)[^=&#\s]*=)"
    r"[^&#\s]*",
    re.IGNORECASE,
)
_SLACK_HOOK = re.compile(r"(hooks\.slack\.com/(?:services|workflows|triggers)/)[^\s\"'<>]+")
_SECRET_NAME = re.compile(r"auth|cookie|token|key|secret|passw|credential", re.IGNORECASE)
#: secret values read so far (tokens, header values, webhooks), masked by :func:`redact`
_KNOWN: set[str] = set()


def redact_url(url: str) -> str:
    """``url`` with its user/password, secret-looking query values and Slack webhook
    path replaced by ``***``: safe to print, store and send."""
    return redact(url)


def redact(text: str) -> str:
    """``text`` with credentials in any URL, and every secret read so far, masked."""
    text = _USERINFO.sub(rf"\g<scheme>{MASK}@", text)
    text = _SECRET_PARAM.sub(rf"\g<key>{MASK}", text)
    text = _SLACK_HOOK.sub(rf"\g<1>{MASK}", text)
    for secret in sorted(_KNOWN, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


class _RedactRecords(logging.Filter):
    """Masks secrets in log records. urllib3 logs each request at DEBUG as host and path
    apart (``"POST /services/T0/B0/... HTTP/1.1"``), and a Slack webhook's path is its
    secret: the path is masked when the whole URL would be."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and len(record.args) == 8:  # a request line
            scheme, host, port, method, path, *rest = record.args
            default = {"http": 80, "https": 443}.get(str(scheme))
            url = f"{scheme}://{host}{'' if port in (None, default) else f':{port}'}{path}"
            if redact(url) != url:
                record.args = (scheme, host, port, method, MASK, *rest)
        message = record.getMessage()
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, ()
        return True


logging.getLogger("urllib3.connectionpool").addFilter(_RedactRecords())


def remember_secret(value: str) -> str:
    """Note ``value`` as a secret, so that :func:`redact` masks it wherever it appears."""
    if len(value) >= 4:  # masking "a" everywhere would mangle every message
        _KNOWN.add(value)
    return value


def split_credentials(url: str) -> tuple[str, tuple[str, str] | None]:
    """``url`` without its ``user:password@`` part, and that pair (None if there is none)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    user, password = unquote(parts.username or ""), unquote(parts.password or "")
    remember_secret(password)
    return urlunsplit(parts._replace(netloc=netloc)), (user, password)


def read_secret(path: str | os.PathLike[str], what: str) -> str:
    """The secret in the file at ``path`` (surrounding whitespace dropped), remembered for
    :func:`redact`; SpecError naming ``what`` when the file is missing or empty."""
    file = Path(path).expanduser()
    try:
        value = file.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read {what} from {file}: {exc}") from None
    if not value:
        raise SpecError(f"{what} file {file} is empty; put the secret on its first line")
    return remember_secret(value)


def parse_headers(items: Sequence[str], where: str, *, secret: bool = False) -> dict[str, str]:
    """``Key=Value`` (or ``Key: Value``) items as a dict. Values are remembered for
    :func:`redact` when ``secret`` (read from a file) or the name says a secret
    (Authorization, Cookie, ...token, ...key)."""
    headers: dict[str, str] = {}
    for item in items:
        item = item.strip()
        if not item or item.startswith("#"):
            continue
        cut = min((i for i in (item.find("="), item.find(":")) if i > 0), default=-1)
        if cut < 0 or not item[:cut].strip():
            raise SpecError(f"{where}: header {item.split('=')[0]!r}... must look like Key=Value")
        name, value = item[:cut].strip(), item[cut + 1 :].strip()
        headers[name] = remember_secret(value) if secret or _SECRET_NAME.search(name) else value
    return headers


def config_path(
    explicit: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> Path:
    """The config file: ``explicit``, else ``$ROLLOUTLAB_CONFIG``, else under
    ``$XDG_CONFIG_HOME`` (default ``~/.config``) ``rolloutlab/config.yaml``."""
    env = os.environ if environ is None else environ
    chosen = explicit or env.get(ENV_CONFIG)
    if chosen:
        return Path(chosen).expanduser()
    base = env.get("XDG_CONFIG_HOME") or str(Path("~/.config").expanduser())
    return Path(base) / "rolloutlab" / "config.yaml"


def load_config(path: Path, *, required: bool) -> dict[str, Any]:
    """The config file's mapping (empty when absent and not ``required``), checked: known
    keys only, bounded size and expansion, no duplicate keys."""
    from rolloutlab._yaml import load_yaml

    if not path.exists():
        if required:
            raise SpecError(f"config file {path} does not exist")
        return {}
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SpecError(f"cannot read config file {path}: {exc}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise SpecError(f"config file {path} is {len(raw)} bytes; at most {MAX_CONFIG_BYTES}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"config file {path} is not UTF-8 text: {exc}") from None
    docs = load_yaml(text, f"config file {path}")  # bounded: no alias bombs, no duplicate keys
    if len(docs) > 1:
        raise SpecError(f"config file {path} holds {len(docs)} YAML documents; give one")
    data = docs[0] if docs else None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SpecError(f"config file {path} must hold a mapping such as 'url: http://prom:9090'")
    unknown = sorted(str(key) for key in data if key not in CONFIG_KEYS)
    if unknown:
        raise SpecError(
            f"config file {path}: unknown keys {unknown}; allowed: {', '.join(CONFIG_KEYS)} "
            "(secrets only as *_file paths)"
        )
    for key in ("url", "preset", "bearer_token_file", "slack_webhook_file"):
        if key in data and not isinstance(data[key], str):
            raise SpecError(f"config file {path}: {key} must be a string, got {data[key]!r}")
    headers = data.get("headers", {})
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise SpecError(f"config file {path}: headers must map names to strings")
    return data


@dataclass(frozen=True)
class Settings:
    """Connection defaults resolved from flags, environment and config file.

    ``origin`` says where each value came from (``"flag"``, ``"env"``, ``"config"``),
    for messages. Secrets never appear in the repr.
    """

    url: str | None = None
    preset: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    bearer: str | None = field(default=None, repr=False)
    slack_webhook: str | None = field(default=None, repr=False)
    origin: dict[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        url = redact_url(self.url) if self.url else None
        secret = {
            "bearer": self.bearer is not None,
            "slack_webhook": self.slack_webhook is not None,
        }
        given = ", ".join(k for k, v in secret.items() if v) or "none"
        return (
            f"Settings(url={url!r}, preset={self.preset!r}, headers={sorted(self.headers)}, "
            f"secrets: {given})"
        )


def settings(
    *,
    url: str | None = None,
    preset: str | None = None,
    headers: Sequence[str] = (),
    headers_file: str | os.PathLike[str] | None = None,
    bearer_file: str | os.PathLike[str] | None = None,
    slack_webhook_file: str | os.PathLike[str] | None = None,
    config: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Resolve the connection options: flags (the arguments) > environment > config file.

    Headers merge by name with the same precedence. The bearer token is
    ``bearer_file``, else ``$ROLLOUTLAB_BEARER_TOKEN``, else
    ``$ROLLOUTLAB_BEARER_TOKEN_FILE``, else the config's ``bearer_token_file``; the Slack
    webhook likewise. Every secret read is remembered for :func:`redact`.
    """
    env = os.environ if environ is None else environ
    path = config_path(config, env)
    data = load_config(path, required=bool(config or env.get(ENV_CONFIG)))
    origin: dict[str, str] = {}

    def pick(name: str, flag: Any, env_name: str) -> Any:
        for where, value in (
            ("flag", flag),
            ("env", env.get(env_name)),
            ("config", data.get(name)),
        ):
            if value:
                origin[name] = where
                return value
        return None

    merged: dict[str, str] = {}
    for where, layer in (
        (
            "config",
            parse_headers([f"{k}={v}" for k, v in data.get("headers", {}).items()], str(path)),
        ),
        ("env", parse_headers(re.split(r"[\n;]", env.get(ENV_HEADERS, "")), f"${ENV_HEADERS}")),
        ("flag", _file_headers(headers_file)),
        ("flag", parse_headers(headers, "--header")),
    ):
        if layer:
            merged.update(layer)
            origin["headers"] = where

    def secret(
        name: str, flag_file: Any, env_value: str, env_file: str, config_key: str
    ) -> str | None:
        if flag_file:
            origin[name] = "flag"
            return read_secret(flag_file, name.replace("_", " "))
        if env.get(env_value):
            origin[name] = "env"
            return remember_secret(env[env_value].strip())
        for where, file in (("env", env.get(env_file)), ("config", data.get(config_key))):
            if file:
                origin[name] = where
                return read_secret(file, name.replace("_", " "))
        return None

    return Settings(
        url=pick("url", url, ENV_URL),
        preset=pick("preset", preset, ENV_PRESET),
        headers=merged,
        bearer=secret("bearer", bearer_file, ENV_BEARER, ENV_BEARER_FILE, "bearer_token_file"),
        slack_webhook=secret(
            "slack_webhook", slack_webhook_file, ENV_SLACK, ENV_SLACK_FILE, "slack_webhook_file"
        ),
        origin=origin,
    )


def _file_headers(path: str | os.PathLike[str] | None) -> dict[str, str]:
    """Headers from a file, one ``Key: Value`` or ``Key=Value`` per line."""
    if not path:
        return {}
    file = Path(path).expanduser()
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read headers from {file}: {exc}") from None
    return parse_headers(lines, str(file), secret=True)
