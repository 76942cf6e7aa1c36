"""The one exception tree of rolloutlab.

Every error a user can meet derives from :class:`RolloutlabError`, so
``except rolloutlab.RolloutlabError`` catches all of them, and each message says
what was wrong, where, and how to fix it.

    RolloutlabError
    ├── DataError          a recording or data file is malformed (names file, row/column)
    ├── SpecError          a spec / manifest is invalid (names the field and the fix)
    ├── StorageError       a file could not be written (disk full, permissions)
    ├── SourceError        getting data failed
    │   ├── ConnectionFailed   server unreachable or timed out
    │   ├── QueryError         the server rejected a query (bad PromQL, 4xx/5xx)
    │   └── EmptyResult        a query returned no series (names the variant)
    └── ActuationError     changing the world failed (router write, Kubernetes API)
        ├── ValidationFailed   refused before writing (bad weight, missing route)
        └── ConflictError      concurrent modification persisted past retries

Data problems inside statistics never raise: they give a neutral result with a
reason. Misuse (wrong types, bad spec, bad files) raises one of these.

Besides its message, an error carries its context as attributes (None when unknown),
so code can act on it without parsing text: :class:`DataError` has ``source`` (the file)
and ``row`` (1-based); :class:`SourceError` has ``url`` (credentials redacted),
``query`` and ``status`` (the HTTP status, when the server answered).
"""

from __future__ import annotations


class RolloutlabError(Exception):
    """Base of every rolloutlab error."""


class DataError(RolloutlabError, ValueError):
    """A recording or input file is malformed: ``source`` names the file, ``row`` the
    first offending row (1-based) when one is to blame."""

    def __init__(self, message: str, *, source: str | None = None, row: int | None = None):
        super().__init__(message)
        self.source = source
        self.row = row


class SpecError(RolloutlabError, ValueError):
    """A spec (Flagger Canary manifest or rolloutlab YAML) is invalid."""


class StorageError(RolloutlabError, OSError):
    """Writing a file failed (disk full, no permission); what was there before is intact."""


class SourceError(RolloutlabError):
    """Fetching data from a source failed: ``url`` (credentials redacted), the PromQL
    ``query`` and the HTTP ``status`` say where, when known."""

    def __init__(
        self,
        message: str,
        *,
        url: str | None = None,
        query: str | None = None,
        status: int | None = None,
    ):
        super().__init__(message)
        self.url = url
        self.query = query
        self.status = status


class ConnectionFailed(SourceError):
    """The server could not be reached, or did not answer in time."""


class QueryError(SourceError):
    """The server rejected or failed a query; the message carries its error text."""


class EmptyResult(SourceError):
    """A query returned no data for a variant that was expected."""


class ActuationError(RolloutlabError):
    """A write to the traffic router or cluster failed."""


class ValidationFailed(ActuationError, ValueError):
    """A write was refused before anything was sent (bad weight, missing route)."""


class ConflictError(ActuationError):
    """The object kept changing under us past the retry limit."""


__all__ = [
    "RolloutlabError",
    "DataError",
    "SpecError",
    "StorageError",
    "SourceError",
    "ConnectionFailed",
    "QueryError",
    "EmptyResult",
    "ActuationError",
    "ValidationFailed",
    "ConflictError",
]
