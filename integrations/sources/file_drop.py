"""File-drop source: JSON Lines exports dropped into a folder (the demo's and many cities' feed).

A platform export, a scraper or a partner agency writes ``*.jsonl`` files into ``drop_dir``; one
line is one post in the shape of :mod:`social311.demo.generate` (``id``, ``created_at``,
``user.handle``, ``text``, ``geo``, ``place``, ``repost_of``, ``reply_to``, ``lang``). Files are
append-only and new files sort after old ones, so the cursor is simply the last line consumed:
``{"file": "posts-002.jsonl", "line": 17}``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from social311.integrations.base import PluginConfig
from social311.integrations.sources.base import FetchResult, SourcePlugin
from social311.privacy import mask_personal_data, pseudonymise
from social311.records import Post, Reject

# C0 and C1 control characters except tab and newline: they break terminals and CSV exports.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_EXCERPT_CHARS = 200


class FileDropConfig(PluginConfig):
    """Settings of a file-drop source."""

    drop_dir: str
    pattern: str = "*.jsonl"
    city_handles: list[str] = []
    outbox_dir: str | None = None  # where replies are written; default: ``<drop_dir>/outbox``


class _User(BaseModel):
    model_config = ConfigDict(extra="ignore")
    handle: str | None = None
    name: str | None = None


class _Geo(BaseModel):
    model_config = ConfigDict(extra="ignore")
    lat: float | None = None
    lon: float | None = None


class _Place(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str | None = None
    bbox: tuple[float, float, float, float] | None = None


class RawPost(BaseModel):
    """One line of a drop file. Unknown keys are ignored: exports carry many we do not use."""

    model_config = ConfigDict(extra="ignore")
    id: str = Field(min_length=1)
    created_at: datetime
    text: str
    user: _User | None = None
    geo: _Geo | None = None
    place: _Place | None = None
    repost_of: str | None = None
    reply_to: str | None = None
    lang: str | None = None
    url: str | None = None

    @field_validator("id", "repost_of", "reply_to", mode="before")
    @classmethod
    def _numeric_ids_as_text(cls, value: object) -> object:
        # Platforms export ids as numbers or strings; both mean the same post.
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def summarise_error(exc: ValidationError) -> str:
    """``"geo.lat: Input should be less than or equal to 90; text: Field required"``."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "record"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def clean_text(text: str) -> str:
    """The text as written, minus control characters and surrounding whitespace."""
    return _CONTROL.sub("", text).strip()


def mentions_handle(text: str, handles: list[str]) -> bool:
    """True when ``text`` tags one of ``handles`` (``@DemoCity311``, any case)."""
    for handle in handles:
        name = re.escape(handle.lstrip("@"))
        if name and re.search(rf"(?<![\w@])@{name}(?!\w)", text, flags=re.IGNORECASE):
            return True
    return False


class FileDropSource(SourcePlugin):
    """Reads JSON Lines files from a folder, resuming after the last line it consumed."""

    config_model = FileDropConfig
    config: FileDropConfig
    #: Replies go to an outbox folder, for the platform export's counterpart to post. Whether
    #: they are sent at all is the city's choice (``replies_enabled`` in the city YAML).
    supports_reply = True

    def reply(self, post: Post, text: str) -> str | None:
        """Append the answer to ``<outbox>/replies-YYYYMMDD.jsonl``; returns the reply's id.

        One JSON line per reply: ``reply_id``, ``in_reply_to`` (the platform's post id),
        ``text`` and ``created_at``. The id is derived from the post, so a retried reply is
        recognisable downstream.
        """
        outbox = Path(self.config.outbox_dir or Path(self.config.drop_dir) / "outbox")
        outbox.mkdir(parents=True, exist_ok=True)
        now = datetime.now(timezone.utc)
        reply_id = f"reply-{post.native_id}"
        line = json.dumps({"reply_id": reply_id, "in_reply_to": post.native_id, "text": text,
                           "created_at": now.strftime("%Y-%m-%dT%H:%M:%SZ")}, ensure_ascii=False)
        with open(outbox / f"replies-{now:%Y%m%d}.jsonl", "a", encoding="utf-8") as handle:
            handle.write(line + "\n")
        return reply_id

    def fetch(self, cursor: str | None, *, pseudonym_key: str) -> FetchResult:
        """Return posts from lines after ``cursor``; bad lines become rejects.

        Args:
            cursor: ``{"file": name, "line": n}`` as JSON, or None to read everything.
            pseudonym_key: key for the author pseudonyms.

        Returns:
            The posts, the rejects and the cursor of the last consumed line (unchanged when
            nothing new was there). A last line without a newline that is not valid JSON yet
            is left for the next fetch: its writer may still be writing it.
        """
        folder = Path(self.config.drop_dir)
        if not folder.is_dir():
            reason = f"drop folder {folder} does not exist or is not a folder"
            return FetchResult(rejects=[self._reject(str(folder), reason, "")], cursor=cursor)
        start_file, start_line = _parse_cursor(cursor)
        posts: list[Post] = []
        rejects: list[Reject] = []
        seen: dict[str, str] = {}
        last = (start_file, start_line) if start_file is not None else None
        for path in sorted(p for p in folder.glob(self.config.pattern) if p.is_file()):
            if start_file is not None and path.name < start_file:
                continue
            skip = start_line if path.name == start_file else 0
            for number, line, complete in _lines(path):
                if number <= skip:
                    continue
                raw = line.decode("utf-8", errors="replace").rstrip("\r\n")
                if not complete and not _is_json(raw):
                    break
                last = (path.name, number)
                if not raw.strip():
                    continue
                ref = f"{path.name}:{number}"
                try:
                    line.decode("utf-8")
                except UnicodeDecodeError as exc:
                    rejects.append(self._reject(ref, f"not UTF-8: {exc.reason} at byte {exc.start}", raw))
                    continue
                result = self._to_post(raw, ref, pseudonym_key)
                if isinstance(result, Reject):
                    rejects.append(result)
                elif result.post_id in seen:
                    reason = f"duplicate id {result.native_id!r}, first at {seen[result.post_id]}"
                    rejects.append(self._reject(ref, reason, raw))
                else:
                    seen[result.post_id] = ref
                    posts.append(result)
        new_cursor = json.dumps({"file": last[0], "line": last[1]}) if last else cursor
        return FetchResult(posts=posts, rejects=rejects, cursor=new_cursor)

    def _to_post(self, raw: str, ref: str, key: str) -> Post | Reject:
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            return self._reject(ref, f"not valid JSON: {exc.msg} at column {exc.colno}", raw)
        except RecursionError:
            return self._reject(ref, "not valid JSON: nested too deeply", raw)
        if not isinstance(data, dict):
            return self._reject(ref, f"not a JSON object but a {type(data).__name__}", raw)
        try:
            rec = RawPost.model_validate(data)
            text = clean_text(rec.text)
            if not text:
                return self._reject(ref, "text: empty after removing whitespace and control characters", raw)
            handle = (rec.user.handle or "").lstrip("@") if rec.user else ""
            geo, place = rec.geo or _Geo(), rec.place
            return Post(
                post_id=f"{self.instance_name}:{rec.id}",
                source=self.instance_name,
                native_id=str(rec.id),
                text=text,
                created_at=rec.created_at,
                author_hash=pseudonymise(handle, key) if handle else None,
                lat=geo.lat,
                lon=geo.lon,
                place_name=place.name if place else None,
                place_bbox=place.bbox if place else None,
                repost_of=f"{self.instance_name}:{rec.repost_of}" if rec.repost_of is not None else None,
                reply_to=f"{self.instance_name}:{rec.reply_to}" if rec.reply_to is not None else None,
                mentions_city=mentions_handle(text, self.config.city_handles),
                lang=rec.lang,
                url=rec.url,
            )
        except ValidationError as exc:
            return self._reject(ref, summarise_error(exc), raw)

    def _reject(self, ref: str, reason: str, raw: str) -> Reject:
        excerpt = mask_personal_data(clean_text(raw[:_EXCERPT_CHARS]))
        return Reject(source=self.instance_name, record_ref=ref, reason=reason[:1000], raw_excerpt=excerpt)


def _parse_cursor(cursor: str | None) -> tuple[str | None, int]:
    if not cursor:
        return None, 0
    try:
        data = json.loads(cursor)
        return str(data["file"]), int(data["line"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"file_drop cursor {cursor!r} is not {{'file': name, 'line': n}}") from exc


def _lines(path: Path) -> Iterator[tuple[int, bytes, bool]]:
    """(1-based number, bytes, ends with a newline) for each line, read lazily."""
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            yield number, line, line.endswith(b"\n")


def _is_json(raw: str) -> bool:
    try:
        json.loads(raw)
    except (json.JSONDecodeError, RecursionError):
        return False
    return True
