"""Manifests as documents: reading files and folders, finding templates by name and
namespace, and the warning for what rolloutlab leaves out."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rolloutlab._yaml import load_yaml, read_text
from rolloutlab.errors import SpecError

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
#: What rolloutlab sends instead of a template's own Prometheus credentials.
CREDENTIALS_HINT = (
    "rolloutlab sends only the headers and token given with --url (--header, --header-file, "
    "--bearer-file)"
)


class ManifestWarning(UserWarning):
    """Something in the manifests that rolloutlab leaves out (the message names it)."""


@dataclass(frozen=True)
class Document:
    """One YAML document and where it came from (``file`` or ``file (document 2)``)."""

    data: Any
    where: str

    @property
    def kind(self) -> str:
        return str(self.data.get("kind", "")) if isinstance(self.data, Mapping) else ""

    @property
    def api(self) -> str:
        return str(self.data.get("apiVersion", "")) if isinstance(self.data, Mapping) else ""

    @property
    def meta(self) -> Mapping[str, Any]:
        meta = self.data.get("metadata") if isinstance(self.data, Mapping) else None
        return meta if isinstance(meta, Mapping) else {}

    @property
    def name(self) -> str | None:
        if not self.kind and isinstance(self.data, Mapping):
            return self.data.get("name")
        return self.meta.get("name")

    @property
    def label(self) -> str:
        return f"{self.kind or 'rolloutlab spec'} {self.name or '(unnamed)'} ({self.where})"


def parse_documents(text: str, where: str) -> list[Document]:
    """The non-empty YAML documents of ``text``; a YAML error names the line."""
    docs = [d for d in load_yaml(text, where) if d is not None]
    if len(docs) == 1:
        return _expand_list(Document(docs[0], where))
    return [
        item
        for i, d in enumerate(docs)
        for item in _expand_list(Document(d, f"{where} (document {i + 1})"))
    ]


def _expand_list(doc: Document) -> list[Document]:
    """A ``kind: List`` (what ``kubectl get -o yaml`` writes) as its items."""
    if doc.kind != "List" or not isinstance(doc.data.get("items"), list):
        return [doc]
    return [
        Document(item, f"{doc.where} (item {i + 1})") for i, item in enumerate(doc.data["items"])
    ]


def read_documents(path: Path) -> list[Document]:
    """Every document of a file, or of the manifest files below a folder (sorted by path)."""
    if path.is_dir():
        files = sorted(
            p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in MANIFEST_SUFFIXES
        )
        if not files:
            raise SpecError(
                f"{path}: no {', '.join(MANIFEST_SUFFIXES)} files in this folder. Point "
                "--spec at the folder holding the Canary or Rollout and its templates."
            )
    elif path.is_file():
        files = [path]
    else:
        raise SpecError(f"{path}: no such spec file or folder. Check the path.")
    if len(files) == 1:
        return _parse_file(files[0])
    docs, broken = [], []
    for f in files:
        try:
            docs.extend(_parse_file(f))
        except SpecError as exc:
            broken.append(str(exc))
    if broken and not docs:
        raise SpecError(
            f"{path}: none of its {len(files)} file(s) is plain YAML: {' '.join(broken)}"
        )
    if broken:  # a GitOps folder may hold Helm templates and other files that are not YAML
        warnings.warn(
            f"{path}: skipped {len(broken)} file(s) that are not plain YAML: {' '.join(broken)}",
            ManifestWarning,
            stacklevel=3,
        )
    return docs


def _parse_file(path: Path) -> list[Document]:
    """The documents of one file; a Helm chart template (Go template actions that are not
    YAML) is named as such, with the command that renders it."""
    text = read_text(path)
    try:
        return parse_documents(text, str(path))
    except SpecError as exc:
        if "{{" not in text:
            raise
        raise SpecError(
            f"{exc} The file holds template actions ({{{{ ... }}}}): it looks like a Helm "
            "chart template. Render the chart first (helm template RELEASE CHART > "
            "rendered.yaml) and give rolloutlab the rendered manifests."
        ) from None


class _TemplateIndex:
    """Templates by (namespace, name); a template with no namespace matches any, and so
    does an owner (Canary, Rollout) with none when one template has the name (kustomize's
    ``namespace:`` or ``kubectl apply -n`` places it)."""

    def __init__(self, templates: Iterable[Document], owner: Document) -> None:
        self.templates = list(templates)
        self.owner = owner

    def find(self, kind: Sequence[str], name: str, namespace: str | None) -> Document:
        same = [d for d in self.templates if d.kind in kind and d.name == name]
        exact = [d for d in same if d.meta.get("namespace") == namespace]
        loose = [d for d in same if not d.meta.get("namespace")]
        if exact or loose:
            return (exact or loose)[0]
        if namespace is None and len(same) == 1:
            return same[0]  # an owner without namespace is applied where its template is
        where = f"{namespace}/{name}" if namespace else name
        elsewhere = sorted(f"{d.meta.get('namespace')}/{d.name}" for d in same)
        hint = f" (found only {', '.join(elsewhere)}: check the namespace)" if elsewhere else ""
        raise SpecError(
            f"{self.owner.where}: {self.owner.kind} {self.owner.name} references "
            f"{' or '.join(kind)} {where}, which is not among the manifests given{hint}. "
            "Add the template's file to the folder (or document to the file)."
        )


def _warn_unsupported(skipped: Sequence[str], where: str) -> None:
    """One warning naming the metrics left out, each once (a template may serve several
    analysis steps)."""
    skipped = list(dict.fromkeys(skipped))
    if skipped:
        warnings.warn(
            f"{where}: rolloutlab queries Prometheus only and leaves out {len(skipped)} "
            f"metric(s) it cannot evaluate: {'; '.join(skipped)}. Judge them another way.",
            ManifestWarning,
            stacklevel=4,
        )
