"""Base class of source plugins (group ``social311.sources``): fetch posts since a cursor."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from social311.integrations.base import Plugin
from social311.records import Post, Reject


@dataclass(frozen=True)
class FetchResult:
    """One fetch: valid posts, rejected records with reasons, and the cursor to resume from."""

    posts: list[Post] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    cursor: str | None = None


class SourcePlugin(Plugin, ABC):
    """A place residents' posts come from.

    ``fetch`` must be resumable: given the cursor it returned last time, it returns only what is
    new. It must never raise on one bad record: bad records become ``Reject`` entries.
    """

    #: True when ``reply`` can post a public answer to the resident.
    supports_reply: bool = False

    @abstractmethod
    def fetch(self, cursor: str | None, *, pseudonym_key: str) -> FetchResult:
        """Return posts newer than ``cursor``.

        Args:
            cursor: what the previous fetch returned, or None on first use.
            pseudonym_key: key for :func:`social311.privacy.pseudonymise` of author handles.
        """

    def reply(self, post: Post, text: str) -> str | None:
        """Answer the resident under their post; return the reply's id. Default: unsupported."""
        raise NotImplementedError(f"{type(self).__name__} cannot reply")
