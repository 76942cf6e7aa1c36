"""Test helper: a Kubernetes API emulator (kmock) on 127.0.0.1, for the real sync client.

kmock's ``KubernetesEmulator`` runs in a background thread with its own event loop,
on a free loopback port; tests talk to it with the official ``kubernetes`` client
(``Configuration(host=url)``), so every request is real HTTP.

What kmock does not model, and what this helper scripts in its place:

- ``dryRun``: kmock ignores the query parameter and would store a dry-run patch.
  :class:`ScriptedEmulator` answers a ``dryRun=All`` PATCH with the merged object
  without storing it, as a real API server does. Tests also assert that the
  request carried ``dryRun=All`` (the part rolloutlab controls).
- Conflicts and failures: kmock keeps no ``resourceVersion``, never answers 409 for
  a stale write, and stores a patch even when a scripted reaction answers an error.
  :meth:`KubeEmulator.fail` scripts an error answered *before* the object is
  touched, as a real server does.
- Lost responses: :meth:`KubeEmulator.lose` applies a request, then holds its answer
  for ``delay`` seconds, so a client with a shorter timeout gives up on a write that
  the server made (real HTTP: the answer arrives, too late).

Fixtures: ``kube`` (a running emulator, stopped afterwards) and ``audit_log`` (an
audit log in the test's tmp dir, also set as ``$ROLLOUTLAB_AUDIT_LOG`` so that no
test writes to the home directory).
"""

from __future__ import annotations

import asyncio
import copy
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp.web
import attrs
import kmock
import pytest

from rolloutlab.control.audit import ENV_VAR, AuditLog

T = TypeVar("T")
START_TIMEOUT = 10.0


@dataclass
class Fault:
    """An error answered to matching requests, ``times`` times, before any state change."""

    method: str
    status: int
    name: str | None
    times: int
    message: str
    subresource: str | None = None
    skip: int = 0  # let this many matching requests through first
    delay: float = 0.0  # > 0: apply the request, answer after ``delay`` seconds
    meanwhile: dict[str, Any] | None = None  # someone else's merge patch, made first

    def matches(self, request: kmock.Request) -> bool:
        return (
            self.times > 0
            and request.method.value == self.method
            and (self.name is None or request.name == self.name)
            and (self.subresource is None or (request.subresource or "") == self.subresource)
        )


def status_response(code: int, message: str) -> aiohttp.web.Response:
    """A Kubernetes ``Status`` error body, as the API server sends it."""
    body = {
        "apiVersion": "v1",
        "kind": "Status",
        "metadata": {},
        "status": "Failure",
        "code": code,
        "reason": {409: "Conflict", 403: "Forbidden", 404: "NotFound"}.get(code, "InternalError"),
        "message": message,
    }
    return aiohttp.web.json_response(body, status=code)


@attrs.define(kw_only=True)
class ScriptedEmulator(kmock.KubernetesEmulator):
    """kmock's emulator plus scripted faults and a dry run that stores nothing."""

    faults: list[Fault] = attrs.field(factory=list)

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        for fault in self.faults:
            if fault.matches(request):
                if fault.skip > 0:
                    fault.skip -= 1
                    break
                fault.times -= 1
                if fault.meanwhile is not None:
                    self.objects[request.resource, request.namespace, request.name].patch(
                        fault.meanwhile
                    )
                if fault.delay > 0:
                    answer = await self._answer(request)
                    await asyncio.sleep(fault.delay)
                    return answer
                return status_response(fault.status, fault.message)
        return await self._answer(request)

    async def _answer(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        if request.method == kmock.method.PATCH and request.params.get("dryRun") == "All":
            key = (request.resource, request.namespace, request.name)
            if key not in self.objects or self.objects[key].deleted:
                return status_response(404, f"{request.name} not found")
            preview = kmock.Object(copy.deepcopy(self.objects[key].raw))
            preview.patch(request.data)
            return aiohttp.web.json_response(preview.raw)
        return await super()._handle(request)


class KubeEmulator:
    """A :class:`ScriptedEmulator` served on 127.0.0.1 from a background thread."""

    def __init__(self) -> None:
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="kube-emulator", daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._emulator: ScriptedEmulator | None = None
        self._error: BaseException | None = None
        self.url = ""

    def _serve(self) -> None:
        async def main() -> None:
            async with (
                ScriptedEmulator() as emulator,
                kmock.Server(emulator, host="127.0.0.1") as server,
            ):
                self._emulator = emulator
                self._loop = asyncio.get_running_loop()
                self._stop = asyncio.Event()
                self.url = str(server.url).rstrip("/")
                self._ready.set()
                await self._stop.wait()

        try:
            asyncio.run(main())
        except BaseException as exc:  # surfaced by start()
            self._error = exc
            self._ready.set()

    def start(self) -> KubeEmulator:
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT) or self._error is not None:
            raise RuntimeError(f"kube emulator did not start: {self._error!r}")
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise RuntimeError(f"kube emulator did not stop within {timeout}s")

    def _call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the emulator's loop thread (its state is not thread-safe)."""
        assert self._loop is not None

        async def run() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(START_TIMEOUT)

    @property
    def emulator(self) -> ScriptedEmulator:
        assert self._emulator is not None
        return self._emulator

    def client(self) -> Any:
        """A real ``kubernetes`` ApiClient pointed at the emulator."""
        from kubernetes import client

        return client.ApiClient(client.Configuration(host=self.url))

    def seed(self, resource: str, obj: dict[str, Any]) -> None:
        """Store ``obj`` (resource like ``"apps/v1/deployments"``) under its metadata name."""
        meta = obj["metadata"]
        key = (resource, meta["namespace"], meta["name"])
        self._call(lambda: self.emulator.objects.__setitem__(key, copy.deepcopy(obj)))

    def object(self, resource: str, namespace: str, name: str) -> dict[str, Any]:
        """The stored object as it is now."""
        return self._call(
            lambda: copy.deepcopy(dict(self.emulator.objects[resource, namespace, name].raw))
        )

    def fail(
        self,
        method: str,
        status: int,
        *,
        name: str | None = None,
        times: int = 1,
        message: str = "scripted failure",
        subresource: str | None = None,
        skip: int = 0,
        meanwhile: dict[str, Any] | None = None,
    ) -> None:
        """Answer the next ``times`` ``method`` requests (for object ``name``, and only for
        its ``subresource`` if given: ``"status"``, or ``""`` for the object itself) with
        ``status``, after letting ``skip`` of them through. ``meanwhile`` is a merge patch
        that someone else wrote just before (the cause of a 409)."""
        fault = Fault(
            method.upper(), status, name, times, message, subresource, skip, meanwhile=meanwhile
        )
        self._call(lambda: self.emulator.faults.append(fault))

    def lose(self, method: str, *, delay: float, name: str | None = None, times: int = 1) -> None:
        """Apply the next ``times`` ``method`` requests but answer each ``delay`` seconds late
        (a lost response, for a client whose timeout is shorter)."""
        fault = Fault(method.upper(), 200, name, times, "", delay=delay)
        self._call(lambda: self.emulator.faults.append(fault))

    def requests(self, method: str | None = None) -> list[kmock.Request]:
        """Requests received so far (optionally only one HTTP method), oldest first."""
        received = self._call(lambda: list(self.emulator))
        return [r for r in received if method is None or r.method.value == method.upper()]


def closed_port() -> int:
    """A free loopback port that nothing listens on (for unreachable-server tests)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def kube() -> Iterator[KubeEmulator]:
    """A running emulator on a free 127.0.0.1 port, stopped after the test."""
    emulator = KubeEmulator().start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def audit_log(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> AuditLog:
    """The audit log for this test, also the default (``$ROLLOUTLAB_AUDIT_LOG``)."""
    path = tmp_path / "audit.jsonl"
    monkeypatch.setenv(ENV_VAR, str(path))
    return AuditLog(path)


# Flagger-generated objects (Flagger 1.x shapes) for the apex service "podinfo".

NS = "test"


def _meta(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": NS, "resourceVersion": "1", **extra}


def virtual_service(primary: int = 100, canary: int = 0, **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "networking.istio.io/v1beta1",
        "kind": "VirtualService",
        "metadata": _meta("podinfo", **meta),
        "spec": {
            "gateways": ["istio-system/public-gateway", "mesh"],
            "hosts": ["app.example.com", "podinfo"],
            "http": [
                {
                    "retries": {"attempts": 3, "perTryTimeout": "1s"},
                    "route": [
                        {
                            "destination": {"host": "podinfo-primary", "port": {"number": 9898}},
                            "weight": primary,
                        },
                        {
                            "destination": {"host": "podinfo-canary", "port": {"number": 9898}},
                            "weight": canary,
                        },
                    ],
                },
                {
                    "match": [{"uri": {"prefix": "/legacy"}}],
                    "route": [{"destination": {"host": "legacy"}}],
                },
            ],
        },
    }


def http_route(primary: int = 100, canary: int = 0) -> dict[str, Any]:
    def ref(name: str, weight: int) -> dict[str, Any]:
        return {"group": "", "kind": "Service", "name": name, "port": 9898, "weight": weight}

    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": _meta("podinfo"),
        "spec": {
            "parentRefs": [{"name": "gateway", "namespace": "istio-ingress"}],
            "hostnames": ["www.example.com"],
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                    "backendRefs": [ref("podinfo-primary", primary), ref("podinfo-canary", canary)],
                }
            ],
        },
    }


def traffic_split(primary: int = 100, canary: int = 0, version: str = "v1alpha2") -> dict[str, Any]:
    """Flagger's TrafficSplit; ``v1alpha1`` as Flagger's linkerd router writes it
    (fluxcd/flagger ``pkg/router/smi.go``: canary first, weights as quantity strings)."""
    backends = [
        {"service": "podinfo-primary", "weight": primary},
        {"service": "podinfo-canary", "weight": canary},
    ]
    if version == "v1alpha1":
        backends = [{**b, "weight": str(b["weight"])} for b in reversed(backends)]
    return {
        "apiVersion": f"split.smi-spec.io/{version}",
        "kind": "TrafficSplit",
        "metadata": _meta("podinfo"),
        "spec": {"service": "podinfo", "backends": backends},
    }


NGINX = "nginx.ingress.kubernetes.io/"


def canary_ingress(canary: int = 0) -> dict[str, Any]:
    backend = {"service": {"name": "podinfo-canary", "port": {"number": 80}}}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": _meta(
            "podinfo-canary",
            annotations={NGINX + "canary": "true", NGINX + "canary-weight": str(canary)},
        ),
        "spec": {
            "ingressClassName": "nginx",
            "rules": [
                {
                    "host": "app.example.com",
                    "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]},
                }
            ],
        },
    }


def traefik_service(primary: int = 100, canary: int = 0) -> dict[str, Any]:
    return {
        "apiVersion": "traefik.io/v1alpha1",
        "kind": "TraefikService",
        "metadata": _meta("podinfo"),
        "spec": {
            "weighted": {
                "services": [
                    {"name": "podinfo-primary", "port": 80, "weight": primary},
                    {"name": "podinfo-canary", "port": 80, "weight": canary},
                ]
            }
        },
    }


def http_proxy(primary: int = 100, canary: int = 0) -> dict[str, Any]:
    return {
        "apiVersion": "projectcontour.io/v1",
        "kind": "HTTPProxy",
        "metadata": _meta("podinfo"),
        "spec": {
            "virtualhost": {"fqdn": "app.example.com"},
            "routes": [
                {
                    "conditions": [{"prefix": "/"}],
                    "retryPolicy": {"count": 3, "perTryTimeout": "1s"},
                    "services": [
                        {"name": "podinfo-primary", "port": 9898, "weight": primary},
                        {"name": "podinfo-canary", "port": 9898, "weight": canary},
                    ],
                }
            ],
        },
    }


def deployment(name: str, *, image: str, replicas: int, app: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(name),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": app}},
            "template": {
                "metadata": {"labels": {"app": app}, "annotations": {"build": image}},
                "spec": {"containers": [{"name": "podinfod", "image": image}]},
            },
        },
    }


def flagger_canary(target: str = "podinfo") -> dict[str, Any]:
    return {
        "apiVersion": "flagger.app/v1beta1",
        "kind": "Canary",
        "metadata": _meta(target),
        "spec": {
            "provider": "istio",
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
            "service": {"port": 9898},
            "analysis": {"interval": "1m", "threshold": 5, "maxWeight": 50, "stepWeight": 10},
        },
    }
