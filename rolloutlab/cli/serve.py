"""``rolloutlab serve``: the judge as an HTTP gate for Flagger webhooks and Argo Rollouts'
web metric provider (see :mod:`rolloutlab.serve`)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from rolloutlab.cli import _kube_options, connection, connection_options
from rolloutlab.errors import SpecError
from rolloutlab.specs.model import JUDGE_NAMES

DEFAULT_PORT = 8080


def register(command) -> None:
    p = command(
        "serve",
        run,
        "Serve the judge over HTTP to Flagger webhooks and Argo Rollouts (web provider).",
    )
    connection_options(p)
    p.set_defaults(preset=None)  # each canary's preset comes from its spec
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--spec", type=Path, help="GitOps folder (or file) of Canaries / Rollouts and templates"
    )
    where.add_argument(
        "--kube",
        action="store_true",
        help="read each Canary or Rollout and its templates from the cluster when first asked",
    )
    p.add_argument("--namespace", help="namespace of manifests that name none")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT)
    p.add_argument(
        "--token-file",
        type=Path,
        help="file holding the service token (default: $ROLLOUTLAB_SERVE_TOKEN)",
    )
    p.add_argument(
        "--state",
        default="rolloutlab-state.sqlite3",
        help="SQLite file keeping each revision's window start across restarts",
    )
    p.add_argument("--judge", choices=JUDGE_NAMES, help="default: each spec's")
    p.add_argument(
        "--timeout",
        type=float,
        default=4.0,
        help="seconds per Prometheus request (an evaluation makes two rounds: keep it under "
        "half the webhooks' timeout, Flagger's default 10s)",
    )
    p.add_argument(
        "--canary-token",
        metavar="NAMESPACE/NAME",
        help="print the token for this Canary's webhook metadata and exit",
    )
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    _kube_options(p)


def run(args: argparse.Namespace) -> int:
    from rolloutlab.serve import Auth

    auth = Auth.load(args.token_file)
    if args.canary_token:
        namespace, sep, name = args.canary_token.partition("/")
        if not (sep and namespace and name):
            raise SpecError(f"--canary-token {args.canary_token!r}: expected NAMESPACE/NAME")
        print(auth.canary_token(namespace, name))
        return 0
    connection(args)
    app = build_app(args, auth)
    import uvicorn

    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    print(f"rolloutlab serve on http://{args.host}:{args.port} ({app.state.engine!r})", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


def build_app(args: argparse.Namespace, auth):
    """The app for the parsed options: catalog, store and engine."""
    from rolloutlab.serve import ClusterCatalog, Engine, FolderCatalog, RevisionStore, create_app

    catalog: FolderCatalog | ClusterCatalog
    if args.spec is not None:
        catalog = FolderCatalog(args.spec, namespace=args.namespace)
    elif args.kube:
        from rolloutlab.specs.kube import load_from_cluster

        def load(name: str, namespace: str):
            return load_from_cluster(
                name, namespace, context=args.context, kubeconfig=args.kubeconfig
            )

        catalog = ClusterCatalog(load)
    else:
        raise SpecError("serve needs to know the canaries: give --spec FOLDER or --kube.")
    engine = Engine(
        args.url,
        catalog,
        RevisionStore(args.state),
        judge=args.judge,
        headers=dict(item.split("=", 1) for item in args.header),
        bearer=args.bearer,
        timeout_s=args.timeout,
    )
    return create_app(engine, auth)
