"""The HTTP front end: Flagger webhooks, Argo Rollouts' web metric provider, verdicts,
health and metrics, over one :class:`~rolloutlab.serve.engine.Engine`.

Every endpoint but ``/healthz`` needs a credential (:mod:`rolloutlab.serve.auth`);
bodies are bounded and validated before anything is judged.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from typing import Any

from prometheus_client import Counter, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from rolloutlab.errors import RolloutlabError
from rolloutlab.serve.auth import Auth
from rolloutlab.serve.catalog import UnknownCanary
from rolloutlab.serve.engine import Engine, Evaluation
from rolloutlab.serve.gates import HOOKS, UNAVAILABLE, gate
from rolloutlab.views.metrics import CONTENT_TYPE, registry

log = logging.getLogger(__name__)

#: Flagger's payload is a few hundred bytes; anything much larger is refused unread.
MAX_BODY_BYTES = 16 * 1024
#: A Kubernetes object name or namespace (DNS-1123 subdomain).
NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")
#: A revision: Flagger's checksum, Argo's pod-template hash.
REVISION = re.compile(r"[A-Za-z0-9._:-]{1,128}")


class BadRequest(Exception):
    """A request the service refuses before judging (status and message)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def create_app(engine: Engine, auth: Auth) -> Starlette:
    """The ASGI app serving ``engine``'s evaluations to callers ``auth`` lets in."""
    metrics = registry(lambda: [e.state() for e in engine.latest()])
    calls = Counter(
        "rolloutlab_serve_requests",
        "Requests answered, by endpoint and HTTP status",
        ["endpoint", "code"],
        registry=metrics,
    )

    def answer(endpoint: str, status: int, body: Mapping[str, Any]) -> JSONResponse:
        calls.labels(endpoint, str(status)).inc()
        return JSONResponse(dict(body), status_code=status)

    def refuse(endpoint: str, exc: BadRequest) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        calls.labels(endpoint, str(exc.status)).inc()
        return JSONResponse({"error": str(exc)}, status_code=exc.status, headers=headers)

    async def evaluate(namespace: str, name: str, revision: str | None) -> Evaluation:
        try:
            return await run_in_threadpool(engine.evaluate, namespace, name, revision)
        except UnknownCanary as exc:
            raise BadRequest(404, str(exc)) from None
        except RolloutlabError as exc:  # the catalog could not read the spec
            raise BadRequest(UNAVAILABLE, f"cannot judge {namespace}/{name}: {exc}") from None

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def metrics_endpoint(request: Request) -> Response:
        try:
            _bearer(auth, request)
        except BadRequest as exc:
            return refuse("metrics", exc)
        return Response(generate_latest(metrics), media_type=CONTENT_TYPE)

    async def flagger(request: Request) -> Response:
        hook = request.path_params["hook"]
        endpoint = f"flagger/{hook}"
        try:
            if hook not in HOOKS:
                raise BadRequest(404, f"no webhook {hook!r}; the webhooks are {', '.join(HOOKS)}")
            payload = _flagger_payload(await _body(request))
            namespace, name = payload["namespace"], payload["name"]
            token = payload["metadata"].get("token")
            if not (
                auth.bearer_ok(request.headers.get("authorization"))
                or auth.canary_ok(namespace, name, token)
            ):
                raise BadRequest(
                    401,
                    f"no valid credential for {namespace}/{name}: put the canary's token in the "
                    "webhook's metadata.token (rolloutlab serve --canary-token NS/NAME prints it)",
                )
            evaluation = await evaluate(namespace, name, payload["checksum"] or None)
        except BadRequest as exc:
            return refuse(endpoint, exc)
        status, why = gate(hook, evaluation)
        log.info("%s %s/%s: %d %s", hook, namespace, name, status, why)
        return answer(endpoint, status, {"hook": hook, "why": why, **evaluation.to_dict()})

    async def verdict(request: Request, endpoint: str) -> Response:
        try:
            _bearer(auth, request)
            namespace = _name(request.path_params["namespace"], "namespace")
            name = _name(request.path_params["name"], "name")
            revision = request.query_params.get("revision") or None
            if revision is not None and not REVISION.fullmatch(revision):
                raise BadRequest(400, "revision: up to 128 letters, digits, '.', '_', ':' or '-'")
            evaluation = await evaluate(namespace, name, revision)
        except BadRequest as exc:
            return refuse(endpoint, exc)
        status = UNAVAILABLE if evaluation.status == "unavailable" else 200
        return answer(endpoint, status, evaluation.to_dict())

    async def argo(request: Request) -> Response:
        return await verdict(request, "argo")

    async def verdict_endpoint(request: Request) -> Response:
        return await verdict(request, "verdict")

    routes = [
        Route("/healthz", healthz),
        Route("/metrics", metrics_endpoint),
        Route("/flagger/{hook}", flagger, methods=["POST"]),
        Route("/argo/namespaces/{namespace}/rollouts/{name}", argo),
        Route("/verdict/{namespace}/{name}", verdict_endpoint),
    ]
    app = Starlette(routes=routes)
    app.state.engine = engine
    return app


def _bearer(auth: Auth, request: Request) -> None:
    if not auth.bearer_ok(request.headers.get("authorization")):
        raise BadRequest(401, "missing or wrong bearer token (Authorization: Bearer <token>)")


async def _body(request: Request) -> bytes:
    """The request body, refused (413) past :data:`MAX_BODY_BYTES` without reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
        raise BadRequest(413, f"the body must be at most {MAX_BODY_BYTES} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise BadRequest(413, f"the body must be at most {MAX_BODY_BYTES} bytes")
    return bytes(body)


def _flagger_payload(body: bytes) -> dict[str, Any]:
    """Flagger's ``CanaryWebhookPayload`` (name, namespace, phase, checksum, metadata),
    validated: 400 naming the field otherwise."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest(
            400,
            "the body is not JSON: expected Flagger's webhook payload "
            '{"name": ..., "namespace": ..., "phase": ..., "checksum": ..., "metadata": {...}}',
        ) from None
    if not isinstance(data, dict):
        raise BadRequest(400, f"expected a JSON object, got {type(data).__name__}")
    for key in ("phase", "checksum"):
        if not isinstance(data.get(key, ""), str):
            raise BadRequest(400, f"{key}: expected a string")
    checksum = data.get("checksum") or ""
    if checksum and not REVISION.fullmatch(checksum):
        raise BadRequest(400, "checksum: up to 128 letters, digits, '.', '_', ':' or '-'")
    metadata = data.get("metadata") or {}
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise BadRequest(400, "metadata: expected an object of strings, as Flagger sends")
    return {
        "name": _name(data.get("name"), "name"),
        "namespace": _name(data.get("namespace"), "namespace"),
        "phase": data.get("phase", ""),
        "checksum": checksum,
        "metadata": metadata,
    }


def _name(value: Any, field: str) -> str:
    if not isinstance(value, str) or not NAME.fullmatch(value):
        raise BadRequest(
            400, f"{field}: expected a Kubernetes name (lower-case letters, digits, '-', '.')"
        )
    return value
