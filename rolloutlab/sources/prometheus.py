"""The live Prometheus source: fetch both variants' per-step increments into a Recording.

Works against Prometheus and the servers that share its query API (Thanos, Mimir/Cortex
with ``X-Scope-OrgID``, VictoriaMetrics). Built on prometheus-api-client's
``PrometheusConnect``: its session carries auth, headers, explicit timeouts and retries (a
dead server fails in well under a second instead of after its default ~6 s of back-off), and
``Prometheus.client`` exposes the rest of its API. ``query_range`` requests go out on that
session exactly as ``custom_query_range`` sends them, but the body is parsed by polars
(:func:`rolloutlab.sources.promjson.response_to_frame`): ``custom_query_range`` would first
decode every point into Python objects, about 3× the cost of the whole polars parse.

Time: every timestamp in and out is UTC-aware. Naive datetimes are rejected (they are
ambiguous; prometheus-api-client would read them as local time). Evaluation times lie on
the epoch-aligned grid of ``step``: ``start`` is rounded up and ``end`` down to it, and the
value at ``t`` is the increase over the window ``(t - step, t]`` (see
:mod:`rolloutlab.sources.presets` for the exact alignment).

Deadlines: ``requests`` only bounds each socket operation, so a server that trickles a byte
now and then can hold a call for ever. :class:`Deadline` bounds a whole call (connect,
headers, body) by shutting its socket down when the time is up; the HTTP callers of the
control layer (Slack, Kubernetes) use it too.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import socket
import threading
import time
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

import polars as pl
import requests
import urllib3
from prometheus_api_client import PrometheusConnect
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import ConnectionPool, HTTPConnectionPool, HTTPSConnectionPool
from urllib3.poolmanager import PoolManager
from urllib3.response import BaseHTTPResponse
from urllib3.util.retry import Retry

from rolloutlab import frames
from rolloutlab._yaml import load_yaml, read_text
from rolloutlab.config import redact_url, split_credentials
from rolloutlab.durations import parse_duration
from rolloutlab.errors import ConnectionFailed, DataError, EmptyResult, QueryError, SpecError
from rolloutlab.sources.presets import Preset, Variants, get_preset, regex_escape
from rolloutlab.sources.promjson import (
    Aggregate,
    MergeRefused,
    PartialDataWarning,
    response_to_frame,
    response_warnings,
)
from rolloutlab.sources.recording import Recording

#: Prometheus refuses query_range results with more points than this per series.
MAX_POINTS = 11_000
#: Ranges longer than this many steps are split over the workers to run in parallel.
SPLIT_POINTS = 1_000
_CANONICAL_KINDS = {"requests": "counter", "errors": "counter", "latency_ms": "bucket"}
_ERROR_BODY = re.compile(rb'\s*\{\s*"status"\s*:\s*"error"')
_TEMPLATE = re.compile(r"\{\{\s*(\w+)\s*\}\}")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")

Auth = str | tuple[str, str] | requests.auth.AuthBase | None


class Deadline:
    """``with Deadline(seconds, error):`` bounds every HTTP call made on this thread inside
    the block to ``seconds`` in total, then raises ``error``.

    Only connections of pools prepared by :func:`watch_pools` (or a
    :class:`DeadlineAdapter`) obey it: their connect timeout is cut to the time left, and
    when the time is up a timer shuts their socket down, which ends a pending read at once
    however slowly the server trickles. Whatever the call then raised (or returned: a body
    cut short may look complete), ``error`` is raised, chained to it. DNS lookups and TLS
    handshakes are bounded by the socket timeouts only.
    """

    _current = threading.local()

    def __init__(self, seconds: float, error: Exception) -> None:
        self.seconds = seconds
        self.error = error
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    @classmethod
    def current(cls) -> Deadline | None:
        """The innermost deadline in force on this thread, if any."""
        return getattr(cls._current, "deadline", None)

    def left(self) -> float:
        """Seconds left before the deadline."""
        return self._end - time.monotonic()

    def watch(self, sock: socket.socket) -> None:
        """Shut ``sock`` down when the time is up (at once if it already is)."""
        with self._lock:
            self._sockets.append(sock)
            if self.expired:
                _shutdown(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _shutdown(sock)

    def __enter__(self) -> Deadline:
        self._end = time.monotonic() + self.seconds
        self._outer = Deadline.current()
        Deadline._current.deadline = self
        self._timer = threading.Timer(self.seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()
        return self

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        self._timer.cancel()
        Deadline._current.deadline = self._outer
        if self.expired:
            raise self.error from exc


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed
        sock.shutdown(socket.SHUT_RDWR)


class _Watched:
    """A urllib3 connection that obeys the thread's :class:`Deadline`, if one is in force."""

    timeout: Any
    sock: Any

    def connect(self) -> None:
        deadline = Deadline.current()
        if deadline is not None:
            left = deadline.left()
            if left <= 0:
                raise urllib3.exceptions.ConnectTimeoutError(self, "the deadline passed")
            if not isinstance(self.timeout, int | float) or self.timeout > left:
                self.timeout = left
        super().connect()  # type: ignore[misc]

    def getresponse(self) -> Any:
        deadline = Deadline.current()
        if deadline is not None and self.sock is not None:
            deadline.watch(self.sock)
        return super().getresponse()  # type: ignore[misc]


class _WatchedHTTPConnection(_Watched, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_Watched, HTTPSConnection):
    pass


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


_PLAIN_POOLS = {"http": HTTPConnectionPool, "https": HTTPSConnectionPool}
_WATCHED_POOLS = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


def watch_pools(manager: PoolManager) -> PoolManager:
    """Make the connections ``manager`` opens from now on obey :class:`Deadline` (plain
    HTTP(S) pools only: a SOCKS proxy's pools are left alone). Returns ``manager``."""
    if manager.pool_classes_by_scheme == _PLAIN_POOLS:
        manager.pool_classes_by_scheme = _WATCHED_POOLS
    return manager


class DeadlineAdapter(HTTPAdapter):
    """``requests``' adapter whose connections (direct or through a proxy) obey
    :class:`Deadline`; mount it on a session."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        watch_pools(self.poolmanager)

    def proxy_manager_for(self, *args: Any, **kwargs: Any) -> PoolManager:
        return watch_pools(super().proxy_manager_for(*args, **kwargs))


@dataclass(frozen=True)
class Timeout:
    """How long a query may take (httpx style): ``total_s`` for the whole call (connect,
    retries and their waits, headers, body) and ``connect_s`` to open a connection."""

    total_s: float = 30.0
    connect_s: float = 5.0

    def __post_init__(self) -> None:
        for name in ("total_s", "connect_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1e9:
                raise SpecError(
                    f"Timeout {name} must be a positive number of seconds, got {value!r}"
                )


@dataclass(frozen=True)
class Retries:
    """What a query retries: refused connections and the HTTP ``statuses`` (rate limits and
    gateway errors; neither a rejected query nor an overloaded server's 503), at most
    ``attempts`` times, after ``backoff_s``, doubling. A ``Retry-After`` is honoured up to
    ``max_wait_s``; a server asking for longer gets no retry, and the call fails at once
    with its status. The whole call stays within :class:`Timeout` ``total_s``."""

    attempts: int = 2
    backoff_s: float = 0.1
    statuses: tuple[int, ...] = (429, 502, 504)
    max_wait_s: float = 5.0

    def __post_init__(self) -> None:
        whole = isinstance(self.attempts, int) and not isinstance(self.attempts, bool)
        if not whole or not 0 <= self.attempts <= 100:
            raise SpecError(
                f"Retries attempts must be a whole number 0..100, got {self.attempts!r}"
            )
        if not (0 <= self.backoff_s <= 60 and 0 <= self.max_wait_s <= 3600):
            raise SpecError("Retries backoff_s (0..60) and max_wait_s (0..3600) are seconds")

    def policy(self) -> Retry:
        """The urllib3 retry policy that does this."""
        return _BoundedRetry(
            total=self.attempts,
            connect=self.attempts,
            read=False,
            status=self.attempts,
            backoff_factor=self.backoff_s,
            status_forcelist=self.statuses,
            allowed_methods=None,
            raise_on_status=False,
            # urllib3 annotates int, but only compares it with the seconds it parsed (float)
            retry_after_max=self.max_wait_s,  # type: ignore[arg-type]
        )


class _BoundedRetry(Retry):
    """urllib3's Retry, except that a ``Retry-After`` beyond ``retry_after_max``, beyond
    the time left to the call's :class:`Deadline` (or one that cannot be read) ends the
    retries: no waiting that long, no retrying sooner than the server asked."""

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: BaseHTTPResponse | None = None,
        error: Exception | None = None,
        _pool: ConnectionPool | None = None,
        _stacktrace: TracebackType | None = None,
    ) -> Self:
        asked = response.headers.get("Retry-After") if response is not None else None
        if asked is not None:
            try:
                wait = self.new(retry_after_max=math.inf).parse_retry_after(asked)
            except urllib3.exceptions.InvalidHeader:
                wait = math.inf
            deadline = Deadline.current()
            if wait > min(self.retry_after_max, deadline.left() if deadline else math.inf):
                # a pool always passes itself; urllib3 raises with an optional _pool too
                raise urllib3.exceptions.MaxRetryError(_pool, url, None)  # type: ignore[arg-type]
        return super().increment(method, url, response, error, _pool, _stacktrace)


class Prometheus:
    """A Prometheus-compatible query API at ``url``.

    ``auth`` is a bearer token (str), a ``(user, password)`` pair for basic auth, or any
    ``requests`` auth object; ``headers`` are sent with every request (e.g.
    ``{"X-Scope-OrgID": "tenant"}``). ``timeout`` (seconds in total, or a :class:`Timeout`)
    bounds each ``query_range`` call: connecting, retries, headers and body. ``retries``
    (a number of attempts, or :class:`Retries`) re-tries refused connections, rate limits
    (429, honouring a short ``Retry-After``) and gateway errors. ``verify`` is ``requests``'
    TLS setting (bool or a CA bundle path). ``session`` is a ``requests.Session`` of your
    own (proxies, certificates, adapters): the adapter for ``url`` is replaced by one that
    obeys the timeout, and closing the Prometheus leaves the session open.
    ``max_workers`` queries run at once; ranges beyond ``max_points`` steps are split into
    chunks, and ranges beyond ``SPLIT_POINTS`` steps into one chunk per worker so the
    server evaluates them in parallel.

    Every failure is a :class:`~rolloutlab.errors.SourceError` carrying ``url``
    (credentials redacted), ``query`` and, when the server answered, its HTTP ``status``.
    """

    def __init__(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        auth: Auth = None,
        timeout: float | Timeout = 30.0,
        retries: int | Retries = 2,
        verify: bool | str = True,
        session: requests.Session | None = None,
        max_workers: int = 4,
        max_points: int = MAX_POINTS,
    ) -> None:
        if not re.match(r"^https?://[^/]+", url or ""):
            raise SpecError(f"Prometheus url must look like http://host:9090, got {url!r}")
        if max_points < 1 or max_workers < 1:
            raise SpecError("max_points and max_workers must be at least 1")
        # user:password in the URL becomes basic auth, so the URL kept (and printed,
        # stored in recordings, put in errors) carries no credentials
        url, credentials = split_credentials(url)
        auth = credentials if auth is None and credentials else auth
        self.url = url.rstrip("/")
        self.limits = timeout if isinstance(timeout, Timeout) else Timeout(total_s=timeout)
        self.retries = retries if isinstance(retries, Retries) else Retries(attempts=retries)
        self.timeout = float(self.limits.total_s)
        self.max_workers = max_workers
        self.max_points = max_points
        self._owns_session = session is None
        if session is None:
            session = requests.Session()
            session.verify = verify
        session.headers.update(headers or {})
        if isinstance(auth, str):
            session.headers["Authorization"] = f"Bearer {auth}"
        elif auth is not None:
            session.auth = auth
        retry = self.retries.policy()
        self._timeouts = (min(self.timeout, self.limits.connect_s), self.timeout)
        self._session = session
        #: prometheus-api-client's client on the same session (auth, headers, retries,
        #: timeouts), for the rest of its API: ``prom.client.get_label_values("job")``.
        self.client = PrometheusConnect(
            url=self.url, retry=retry, session=session, timeout=self._timeouts
        )
        # Mounted after PrometheusConnect's own adapter for the same prefix, which it replaces.
        session.mount(self.url, DeadlineAdapter(max_retries=retry))

    def __repr__(self) -> str:
        return f"Prometheus({self.url!r})"

    def close(self) -> None:
        """Release the HTTP connections (a session passed in stays open: it is yours)."""
        if self._owns_session:
            self.client.close()

    def __enter__(self) -> Prometheus:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- raw queries -------------------------------------------------------------------

    def query_range(
        self, query: str, start: Any, end: Any, step: Any = "1m"
    ) -> list[dict[str, Any]]:
        """The raw ``query_range`` result list, chunked past ``max_points`` and stitched.

        ``start``/``end`` are snapped inward to the epoch-aligned step grid. Prometheus'
        ``warnings`` (a partial answer) give a :class:`PartialDataWarning`.
        """
        step_s = parse_step(step)
        first, last = _grid(to_utc(start, "start"), to_utc(end, "end"), step_s)
        merged: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
        notes: list[str] = []
        for chunk_start, chunk_end in _chunks(first, last, step_s, self.max_points):
            body = self._get(query, chunk_start, chunk_end, step_s)
            try:
                doc = json.loads(body)
                self._check_success(doc, query)
                for series in doc["data"]["result"]:
                    key = tuple(sorted(series["metric"].items()))
                    if key in merged:
                        merged[key]["values"].extend(series["values"])
                    else:
                        merged[key] = {"metric": series["metric"], "values": list(series["values"])}
            except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
                raise self._not_prometheus(exc, query) from None
            notes += [note for note in response_warnings(doc) if note not in notes]
        if notes:
            warnings.warn(
                f"{self.url} answered with warnings, the data may be partial: "
                f"{' | '.join(notes)}\n  query: {query}",
                PartialDataWarning,
                stacklevel=2,
            )
        return list(merged.values())

    def _get(self, query: str, start: int, end: int, step_s: int) -> bytes:
        """One ``query_range`` request (the same one ``PrometheusConnect.custom_query_range``
        sends) returning the raw body, so polars can parse it without making a Python object
        per point. Every failure becomes a rolloutlab error."""
        params: dict[str, str | int] = {
            "query": query,
            "start": start,
            "end": end,
            "step": f"{step_s}s",
        }
        late = ConnectionFailed(
            f"Prometheus at {self.url} did not answer within {self.timeout:g} s in total "
            f"(connect, headers and body; query: {query}). Raise timeout= or fetch a shorter "
            "range.",
            **self._context(query),
        )
        try:
            with Deadline(self.timeout, late):
                response = self._session.get(
                    f"{self.url}/api/v1/query_range", params=params, timeout=self._timeouts
                )
        except requests.exceptions.Timeout:
            raise late from None
        except requests.exceptions.SSLError as exc:
            raise ConnectionFailed(
                f"TLS failed talking to Prometheus at {self.url}: {_reason(exc)}. "
                "Pass verify='/path/to/ca.pem' (or verify=False to skip the check).",
                **self._context(query),
            ) from None
        except requests.exceptions.RequestException as exc:
            raise ConnectionFailed(
                f"cannot reach Prometheus at {self.url}, or its answer was cut off: "
                f"{_reason(exc)}. Check the URL and port, and that the server is running.",
                **self._context(query),
            ) from None
        if response.status_code != 200:
            raise self._http_error(response, query)
        return response.content

    def _context(self, query: str, status: int | None = None) -> dict[str, Any]:
        """The attributes every SourceError of this client carries."""
        return {"url": redact_url(self.url), "query": query, "status": status}

    def _check_success(self, doc: Any, query: str) -> None:
        """Refuse a 200 answer whose body says ``status: error`` (some proxies do that)."""
        if isinstance(doc, Mapping) and doc.get("status") == "error":
            raise QueryError(
                f"Prometheus at {self.url} answered HTTP 200 with an error: "
                f"{doc.get('errorType', 'error')}: {str(doc.get('error', ''))[:500]}.\n"
                f"  query: {query}",
                **self._context(query, 200),
            )

    def _not_prometheus(self, exc: Exception, query: str) -> QueryError:
        return QueryError(
            f"{self.url} answered query_range with something that is not a Prometheus API "
            f"response ({str(exc)[:300]}). Is the URL the Prometheus root (e.g. "
            "http://host:9090, or http://mimir/prometheus), and does it need a login?",
            **self._context(query, 200),
        )

    def _http_error(self, response: requests.Response, query: str) -> QueryError:
        """A QueryError carrying Prometheus' own error text from a non-200 answer."""
        status = response.status_code
        try:
            payload = response.json()
            detail = f"{payload.get('errorType', 'error')}: {str(payload.get('error', ''))[:500]}"
        except (ValueError, AttributeError, RecursionError):
            detail = response.text.strip()[:500] or response.reason
        hint = {
            401: " Check auth= (bearer token or user/password).",
            403: " Check auth= and headers= (e.g. X-Scope-OrgID for Mimir/Cortex).",
            404: " Is the URL the Prometheus root?",
            429: f" The server is rate limiting (Retry-After: {response.headers.get('Retry-After', 'not given')}"
            f"; waits up to {self.retries.max_wait_s:g} s are honoured): query less often.",
        }.get(status, "")
        what = "rejected the query" if 400 <= status < 500 else "failed"
        return QueryError(
            f"Prometheus at {self.url} {what} (HTTP {status}): {detail}.{hint}\n  query: {query}",
            **self._context(query, status),
        )

    # -- recordings --------------------------------------------------------------------

    def fetch(
        self,
        preset: str | Preset | None = "istio",
        *,
        start: Any,
        end: Any,
        step: Any = "1m",
        target: str | None = None,
        namespace: str | None = None,
        variant_label: str | None = None,
        variants: Mapping[str, str] | Sequence[str] | None = None,
        queries: Mapping[str, Any] | str | Path | None = None,
        selector: Mapping[str, str] | None = None,
        names: Mapping[str, str] | None = None,
        aggregate: Aggregate = None,
        missing: Literal["warn", "raise"] = "warn",
        partial: Literal["nan", "keep"] = "nan",
        progress: bool | None = None,
        segment_by: str | None = None,
    ) -> Recording:
        """Fetch ``requests``, ``errors`` (counters) and ``latency_ms`` (buckets) per variant.

        Variants default to Flagger's naming on the preset's label (``<target>-primary`` is
        ``primary``, ``<target>`` is ``canary``); ``variants`` maps variant names to label
        value regexes (or lists literal label values, each its own variant) for A/B/n, on
        ``variant_label`` if given. ``queries`` (a dict or a YAML/JSON file, see
        :func:`load_queries`) add or replace metrics; with ``preset=None`` only they are
        fetched. ``selector`` adds equality label matchers to the preset's queries.
        ``names`` are Flagger's template names the preset uses besides the target: the
        Canary's ``service`` (contour, skipper), ``ingress`` (nginx, skipper), ``route``
        (apisix, knative) and the primary's Knative revision ``primary_route``; service,
        ingress and route default to the target, as in Flagger.

        Series of one query that map to the same variant (and ``le``) but differ in another
        label are refused with a :class:`QueryError` naming the labels (a custom query
        without ``sum by``, say), unless ``aggregate="sum"``. Prometheus' ``warnings`` (a
        partial answer) give a :class:`PartialDataWarning` and ``meta["warnings"]``, and
        the values of the metrics so answered read as NaN: a partial answer is no
        evidence for a canary (``partial="keep"`` keeps them, e.g. to explore).

        Raises :class:`EmptyResult` naming each variant and metric with no data at all;
        steps missing for some variant/metric warn (:class:`PartialDataWarning`) or, with
        ``missing="raise"``, raise :class:`EmptyResult` listing them. A negative counter or
        bucket increase (a broken exporter or proxy) becomes NaN, with a
        :class:`PartialDataWarning` naming it.

        ``segment_by`` (a label such as ``"region"``) fills the recording's ``segment``
        column for ``experiment(...).segments``: the preset's queries keep that label
        (``sum by (variant_label, segment_by)``; custom queries must keep it themselves),
        and a series without it lands in the segment ``"(none)"``, so the segments add up
        to the unsegmented totals.
        """
        if partial not in ("nan", "keep"):
            raise SpecError(f"partial must be 'nan' or 'keep', got {partial!r}")
        step_s = parse_step(step)
        first, last = _grid(to_utc(start, "start"), to_utc(end, "end"), step_s)
        spec = _QuerySpec.build(
            preset,
            target=target,
            namespace=namespace,
            variant_label=variant_label,
            variants=variants,
            queries=queries,
            selector=selector,
            names=names,
            step_s=step_s,
            segment_by=segment_by,
        )
        # Long ranges are also split so the server evaluates them on several cores at once
        # (as Thanos' and Mimir's query frontends do); chunks stay at least SPLIT_POINTS long.
        n_steps = (last - first) // step_s + 1
        per_chunk = min(self.max_points, max(SPLIT_POINTS, -(-n_steps // self.max_workers)))
        chunks = _chunks(first, last, step_s, per_chunk)
        tasks = [(metric, chunk) for metric in spec.queries for chunk in chunks]
        parts, notes_by_metric = self._run(tasks, spec, step_s, progress, aggregate)
        frame = pl.concat(parts, how="vertical") if parts else frames.empty()
        frame = _invalid_to_nan(frame, step_s, self.url)
        if notes_by_metric and partial == "nan":
            warnings.warn(
                f"{sorted(notes_by_metric)} from {self.url} read as NaN: a partial answer is "
                "no evidence for a canary (pass partial='keep' to keep the values)",
                PartialDataWarning,
                stacklevel=2,
            )
            answered = pl.col("metric").is_in(list(notes_by_metric))
            frame = frame.with_columns(
                value=pl.when(answered).then(float("nan")).otherwise("value")
            )
        notes = _check_coverage(frame, spec, first, last, step_s, self.url, missing)
        meta: dict[str, Any] = {
            "format_version": frames.FORMAT_VERSION,
            "source": self.url,
            "queries": {m: q for m, (q, _) in spec.queries.items()},
            "preset": spec.preset_name,
            "target": target,
            "namespace": namespace,
            **({"names": dict(names)} if names else {}),
            "variant_label": spec.variants.label,
            "variants": dict(spec.variants.values),
            "roles": spec.variants.roles,
            "step_s": float(step_s),
            "start": _iso(first),
            "end": _iso(last),
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "audit": [],
        }
        if notes:
            meta["missing_steps"] = notes
        if notes_by_metric:
            meta["partial"] = True
            meta["warnings"] = notes_by_metric
        if aggregate:
            meta["aggregate"] = aggregate
        if segment_by:
            meta["segment_by"] = segment_by
        return Recording(frame, meta, source=self.url)

    def _run(
        self,
        tasks: list[tuple[str, tuple[int, int]]],
        spec: _QuerySpec,
        step_s: int,
        progress: bool | None,
        aggregate: Aggregate,
    ) -> tuple[list[pl.DataFrame], dict[str, list[str]]]:
        """Run (metric, chunk) queries concurrently; the first failure cancels the rest.

        Returns the frames and, per metric, the warnings Prometheus sent with its answers.
        """
        from tqdm.auto import tqdm

        show = len(tasks) >= 8 if progress is None else progress
        unmatched: set[str] = set()
        notes: dict[str, list[str]] = {}

        def one(task: tuple[str, tuple[int, int]]) -> pl.DataFrame:
            metric, (chunk_start, chunk_end) = task
            query, kind = spec.queries[metric]
            body = self._get(query, chunk_start, chunk_end, step_s)
            if _ERROR_BODY.match(body):  # HTTP 200 with an error, as some proxies answer
                with contextlib.suppress(ValueError, RecursionError):
                    self._check_success(json.loads(body), query)
            try:
                parsed = response_to_frame(
                    body,
                    label=spec.variants.label,
                    variant_of=spec.variants.variant_of,
                    metric=metric,
                    kind=kind,
                    le_scale=spec.le_scale.get(metric, 1.0),
                    aggregate=aggregate,
                    source=f"{self.url} ({metric})",
                    segment=spec.segment_by,
                )
            except MergeRefused as exc:
                raise QueryError(f"{exc}\n  query: {query}", **self._context(query, 200)) from None
            except DataError as exc:
                raise self._not_prometheus(exc, query) from None
            unmatched.update(parsed.unmatched)
            for note in parsed.warnings:
                if note not in notes.setdefault(metric, []):
                    notes[metric].append(note)
            return parsed.frame

        parts: list[pl.DataFrame] = []
        with (
            ThreadPoolExecutor(max_workers=min(self.max_workers, len(tasks) or 1)) as pool,
            tqdm(
                total=len(tasks),
                desc="fetch",
                unit="query",
                # None: shown on a terminal or in a notebook, hidden when output is piped.
                disable=(False if progress else None) if show else True,
            ) as bar,
        ):
            pending = {pool.submit(one, task) for task in tasks}
            while pending:
                done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for future in done:
                    error = future.exception()
                    if error is not None:
                        for other in pending:
                            other.cancel()
                        raise error
                    parts.append(future.result())
                    bar.update()
        if unmatched:
            warnings.warn(
                f"{self.url}: series with {spec.variants.label} in {sorted(unmatched)} match "
                f"no variant of {dict(spec.variants.values)} and were left out",
                stacklevel=3,
            )
        if notes:
            text = "; ".join(f"{metric}: {' | '.join(found)}" for metric, found in notes.items())
            warnings.warn(
                f"{self.url} answered with warnings, the data may be partial: {text}",
                PartialDataWarning,
                stacklevel=3,
            )
        return parts, notes


class _QuerySpec:
    """The resolved queries, kinds, bucket scales and variants of one fetch."""

    def __init__(
        self,
        preset_name: str | None,
        variants: Variants,
        queries: dict[str, tuple[str, str]],
        le_scale: dict[str, float],
        segment_by: str | None = None,
    ) -> None:
        self.preset_name = preset_name
        self.variants = variants
        self.queries = queries
        self.le_scale = le_scale
        self.segment_by = segment_by

    @classmethod
    def build(
        cls,
        preset: str | Preset | None,
        *,
        target: str | None,
        namespace: str | None,
        variant_label: str | None,
        variants: Mapping[str, str] | Sequence[str] | None,
        queries: Mapping[str, Any] | str | Path | None,
        selector: Mapping[str, str] | None,
        names: Mapping[str, str] | None,
        step_s: int,
        segment_by: str | None = None,
    ) -> _QuerySpec:
        custom: dict[str, Any] = {}
        if queries is not None:
            if isinstance(queries, str | Path):
                doc = load_queries(queries)
                custom = doc["queries"]
                variant_label = variant_label or doc.get("variant_label")
                variants = variants or doc.get("variants")
            else:
                custom = dict(queries)
        p = get_preset(preset) if isinstance(preset, str) else preset
        if p is None and not custom:
            raise SpecError("fetch needs a preset (e.g. preset='istio') or queries={...}")
        label = variant_label or (p.variant_label if p else None)
        if variants is None:
            if label is None or target is None:
                raise SpecError(
                    "fetch needs target= (Flagger naming: <target>-primary is primary, <target> "
                    "the canary), or variants={'name': 'label value regex', ...} with "
                    "variant_label="
                )
            if p is not None and label == p.variant_label:
                if namespace is None:
                    raise SpecError(f"preset {p.name!r} needs namespace=")
                v = p.variants(target, namespace, names)
            else:
                escaped = regex_escape(target)
                v = Variants(label, {"primary": f"{escaped}-primary", "canary": escaped})
        else:
            if label is None:
                raise SpecError("variants= needs variant_label= when no preset is given")
            if isinstance(variants, str):
                variants = [x.strip() for x in variants.split(",") if x.strip()]
            if not isinstance(variants, Mapping):
                variants = {name: regex_escape(name) for name in variants}
            v = Variants(label, variants)
        if segment_by is not None and (
            not _LABEL_NAME.fullmatch(segment_by) or segment_by in (v.label, "le")
        ):
            raise SpecError(
                f"segment_by={segment_by!r} must be a Prometheus label name other than the "
                f"variant label {v.label!r} and 'le', e.g. segment_by='region'"
            )
        resolved: dict[str, tuple[str, str]] = {}
        le_scale: dict[str, float] = {}
        step = f"{step_s}s"
        if p is not None:
            if namespace is None:
                raise SpecError(f"preset {p.name!r} needs namespace=")
            resolved.update(
                p.queries(
                    v,
                    namespace=namespace,
                    step=step,
                    target=target,
                    extra=selector,
                    names=names,
                    segment_by=segment_by,
                )
            )
            le_scale["latency_ms"] = p.le_to_ms
        context = {
            "step": step,
            "interval": step,
            "namespace": namespace or "",
            "target": target or "",
            "variant_label": v.label,
            "variant_selector": v.matcher(),
        }
        for metric, entry in custom.items():
            query, kind, scale = _custom_entry(metric, entry)
            resolved[metric] = (_render(query, context, metric), kind)
            le_scale[metric] = scale
        return cls(p.name if p else None, v, resolved, le_scale, segment_by)


def _custom_entry(metric: str, entry: Any) -> tuple[str, str, float]:
    """(query, kind, le_scale) from ``"promql"`` or ``{query, kind, le_scale}``."""
    if isinstance(entry, str):
        kind = _CANONICAL_KINDS.get(metric)
        if kind is None:
            raise SpecError(
                f"custom query {metric!r}: give its kind, e.g. "
                f"{{'{metric}': {{'query': '...', 'kind': 'counter'}}}} "
                f"(kinds: {', '.join(frames.KINDS)})"
            )
        return entry, kind, 1.0
    if not isinstance(entry, Mapping) or "query" not in entry:
        raise SpecError(f"custom query {metric!r} must be a PromQL string or {{query, kind}}")
    kind = entry.get("kind", _CANONICAL_KINDS.get(metric))
    if kind not in frames.KINDS:
        raise SpecError(f"custom query {metric!r}: kind must be one of {list(frames.KINDS)}")
    return str(entry["query"]), kind, float(entry.get("le_scale", 1.0))


def _render(query: str, context: Mapping[str, str], metric: str) -> str:
    """Fill ``{{ name }}`` placeholders; unknown names are a SpecError."""

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in context:
            raise SpecError(
                f"custom query {metric!r}: unknown placeholder {{{{ {name} }}}}; "
                f"known: {', '.join(sorted(context))}"
            )
        return context[name]

    return _TEMPLATE.sub(fill, query)


def load_queries(path: str | Path) -> dict[str, Any]:
    """Read custom queries from YAML or JSON: ``{"queries": {...}, "variant_label": ...,
    "variants": ...}`` (the last two only when the file sets them).

    The file holds ``queries: {metric: {query: ..., kind: ..., le_scale: ...}}`` (or just
    that mapping) and optionally ``variant_label`` and ``variants``. Queries may use
    ``{{ step }}``, ``{{ namespace }}``, ``{{ target }}``, ``{{ variant_label }}`` and
    ``{{ variant_selector }}``.
    """
    path = Path(path)
    docs = load_yaml(read_text(path), str(path))
    doc = docs[0] if len(docs) == 1 else None
    if not isinstance(doc, Mapping):
        raise SpecError(f"{path}: expected a mapping with 'queries:'")
    options = {k: doc[k] for k in ("variant_label", "variants") if k in doc}
    queries = doc.get("queries", {k: v for k, v in doc.items() if k not in options})
    if not isinstance(queries, Mapping) or not queries:
        raise SpecError(f"{path}: 'queries' must map metric names to queries")
    return {"queries": dict(queries), **options}


def _invalid_to_nan(frame: pl.DataFrame, step_s: int, url: str) -> pl.DataFrame:
    """Negative or infinite counter and bucket increases as NaN, with a PartialDataWarning
    naming them.

    Prometheus' own ``increase()`` never gives one (it allows for counter resets), so such
    a value is a broken exporter or proxy: invalid data, which a judge counts as a failed
    check for that tick, rather than a fetch that fails validation as a whole. Left as it
    was, +Inf requests would make any error rate 0%.
    """
    negative = (pl.col("kind") != "gauge") & ((pl.col("value") < 0) | pl.col("value").is_infinite())
    bad = frame.filter(negative)
    if bad.is_empty():
        return frame
    text = "; ".join(
        f"variant {variant!r} metric {metric!r} at "
        + _listed(_ranges(sorted({int(t.timestamp()) for t in rows["timestamp"]}), step_s))
        for (variant, metric), rows in bad.group_by("variant", "metric", maintain_order=True)
    )
    warnings.warn(
        f"invalid data from {url}: negative or infinite increases (counters and buckets "
        f"grow by finite amounts; a broken exporter or proxy?) read as NaN: {text}",
        PartialDataWarning,
        stacklevel=3,
    )
    return frame.with_columns(value=pl.when(negative).then(float("nan")).otherwise("value"))


def _check_coverage(
    frame: pl.DataFrame,
    spec: _QuerySpec,
    first: int,
    last: int,
    step_s: int,
    url: str,
    missing: str,
) -> dict[str, list[str]]:
    """Raise EmptyResult for variants with no data; report steps missing for the others."""
    n_steps = (last - first) // step_s + 1
    counts = frame.group_by("metric", "variant").agg(pl.col("timestamp").n_unique())
    seen = {(metric, name): n for metric, name, n in counts.iter_rows()}
    span = f"between {_iso(first)} and {_iso(last)} (step {step_s}s)"
    empty = [
        (metric, name)
        for metric in spec.queries
        for name in spec.variants.names
        if (metric, name) not in seen
    ]
    if empty:
        lines = [
            f"no data for variant {name!r} ({spec.variants.describe(name)}) in {metric!r}"
            for metric, name in empty
        ]
        queries = {m: spec.queries[m][0] for m, _ in empty}
        raise EmptyResult(
            "; ".join(lines)
            + f" from {url} {span}. Check target/namespace, the variant label and the time "
            f"range. Queries: {queries}"
        )
    notes: dict[str, list[str]] = {}
    for (metric, name), count in seen.items():
        if count < n_steps:
            rows = frame.filter((pl.col("metric") == metric) & (pl.col("variant") == name))
            have = {int(t.timestamp()) for t in rows["timestamp"].unique()}
            gaps = [t for t in range(first, last + 1, step_s) if t not in have]
            notes[f"{name}/{metric}"] = _ranges(gaps, step_s)
    if notes:
        text = "; ".join(
            f"variant {key.split('/')[0]!r} metric {key.split('/')[1]!r}: steps missing at "
            + _listed(spans)
            for key, spans in sorted(notes.items())
        )
        message = f"partial data from {url} {span}: {text}"
        if missing == "raise":
            raise EmptyResult(message)
        warnings.warn(message, PartialDataWarning, stacklevel=3)
    return notes


def _ranges(stamps: list[int], step_s: int) -> list[str]:
    """Consecutive grid times as 'start–end' strings (ISO UTC)."""
    out: list[str] = []
    run_start = prev = stamps[0]
    for t in stamps[1:] + [None]:
        if t is not None and t == prev + step_s:
            prev = t
            continue
        out.append(_iso(run_start) if run_start == prev else f"{_iso(run_start)}–{_iso(prev)}")
        if t is not None:
            run_start = prev = t
    return out


def _listed(spans: list[str]) -> str:
    """The first five spans, and an ellipsis if there are more."""
    return ", ".join(spans[:5]) + (" …" if len(spans) > 5 else "")


def _reason(exc: Exception) -> str:
    """The useful part of a requests/urllib3 connection error."""
    text = str(exc)
    match = re.search(r"\[Errno -?\d+\] [^'\")\]]+", text) or re.search(
        r"(Connection refused|Name or service not known|timed out|CERTIFICATE_VERIFY_FAILED"
        r"|Connection reset by peer|Remote end closed connection)",
        text,
    )
    return match.group(0).strip() if match else type(exc).__name__


def _iso(t: int) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def parse_step(step: Any) -> int:
    """A step as whole seconds: ``"1m"``, ``"90s"``, ``"1h30m"``, ``60``, or a timedelta."""
    seconds = parse_duration(step, "step", allow_zero=True)
    if seconds < 1 or not float(seconds).is_integer():
        raise SpecError(f"step must be a whole number of seconds ≥ 1, got {step!r}")
    return int(seconds)


def to_utc(value: Any, name: str = "time") -> datetime:
    """An aware UTC datetime from an aware datetime, ISO 8601 text with an offset or ``Z``,
    ``"now"``/``"now-1h"``, or Unix seconds. Naive datetimes are refused."""
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise SpecError(
                f"{name}={value!r} is naive (no time zone). Pass an aware datetime, e.g. "
                f"{name}=datetime(..., tzinfo=timezone.utc)"
            )
        return value.astimezone(UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str):
        text = value.strip()
        relative = re.fullmatch(r"now(?:\s*([-+])\s*(\S+))?", text)
        if relative:
            now = datetime.now(UTC)
            if relative.group(1) is None:
                return now
            delta = timedelta(seconds=parse_duration(relative.group(2), name, allow_zero=True))
            return now - delta if relative.group(1) == "-" else now + delta
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            parsed = None
        if parsed is not None:
            if parsed.tzinfo is None:
                raise SpecError(
                    f"{name}={value!r} has no UTC offset; write e.g. '{text}Z' or '{text}+00:00'"
                )
            return parsed.astimezone(UTC)
    raise SpecError(
        f"{name}={value!r} is not a time; use an aware datetime, ISO 8601 with an offset "
        "('2026-01-12T10:00:00Z'), 'now-1h', or Unix seconds"
    )


def _grid(start: datetime, end: datetime, step_s: int) -> tuple[int, int]:
    """First and last evaluation time on the epoch-aligned step grid inside [start, end]."""
    first = math.ceil(start.timestamp() / step_s) * step_s
    last = math.floor(end.timestamp() / step_s) * step_s
    if last < first:
        raise SpecError(
            f"the range {start.isoformat()} – {end.isoformat()} holds no step boundary of "
            f"{step_s}s; widen it or shorten the step"
        )
    return first, last


def _chunks(first: int, last: int, step_s: int, max_points: int) -> list[tuple[int, int]]:
    """Split [first, last] into consecutive ranges of at most ``max_points`` grid points."""
    span = max_points * step_s
    return [(s, min(s + span - step_s, last)) for s in range(first, last + 1, span)]


def fetch(
    url: str,
    *,
    preset: str | None = "istio",
    start: Any,
    end: Any,
    step: Any = "1m",
    target: str | None = None,
    namespace: str | None = None,
    headers: Mapping[str, str] | Sequence[str] | None = None,
    bearer: str | None = None,
    variant_label: str | None = None,
    variants: str | Mapping[str, str] | Sequence[str] | None = None,
    queries: str | Path | Mapping[str, Any] | None = None,
    names: Mapping[str, str] | None = None,
    aggregate: Aggregate = None,
    timeout: float = 30.0,
    progress: bool | None = None,
    flagger: bool = False,
    segment_by: str | None = None,
) -> Recording:
    """One-call fetch for the CLI and notebooks: the ``rolloutlab fetch`` options as arguments.

    ``flagger=True`` also fetches Flagger's own series for ``target`` (the weight timeline
    that really happened, its status, its analysis values): see
    :mod:`rolloutlab.sources.flagger`. ``segment_by`` fills the ``segment`` column from
    that label (see :meth:`Prometheus.fetch`).

    ``headers`` may be ``"Key=Value"`` strings; ``variants`` may be ``"a,b"`` (label values,
    each its own variant) or ``"primary=podinfo-primary,canary=podinfo"`` (name=regex).
    """
    header_map: dict[str, str] = {}
    if isinstance(headers, Mapping):
        header_map.update(headers)
    else:
        for item in headers or ():
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise SpecError(f"header {item!r} must look like Key=Value")
            header_map[key.strip()] = value.strip()
    if isinstance(variants, str):
        items = [x.strip() for x in variants.split(",") if x.strip()]
        if items and all("=" in x for x in items):
            variants = dict(x.split("=", 1) for x in items)
        elif any("=" in x for x in items):
            raise SpecError(f"variants {variants!r}: use either 'a,b' or 'name=regex,...'")
        else:
            variants = items
    if flagger and segment_by:
        raise SpecError(
            "segment_by and flagger=True cannot be combined yet (Flagger's series are not "
            "segmented): fetch the segments without flagger=True"
        )
    with Prometheus(url, headers=header_map, auth=bearer, timeout=timeout) as prom:
        recording = prom.fetch(
            preset,
            start=start,
            end=end,
            step=step,
            target=target,
            namespace=namespace,
            variant_label=variant_label,
            variants=variants,
            queries=queries,
            names=names,
            aggregate=aggregate,
            progress=progress,
            segment_by=segment_by,
        )
        if not flagger:
            return recording
        if not (target and namespace):
            raise SpecError("flagger=True needs target= and namespace= (the Canary's names)")
        from rolloutlab.sources.flagger import with_flagger

        return with_flagger(recording, prom, target=target, namespace=namespace, step=step)


__all__ = [
    "MAX_POINTS",
    "PartialDataWarning",
    "Prometheus",
    "Retries",
    "Timeout",
    "fetch",
    "load_queries",
    "parse_duration",
    "parse_step",
    "to_utc",
]
