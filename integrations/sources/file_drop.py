"""File-drop source: JSON Lines exports dropped into a folder (the demo's and many cities' feed).

A platform export, a scraper or a partner agency writes ``*.jsonl`` files into ``drop_dir``; one
line is one post in the shape of :mod:`social311.demo.generate` (``id``, ``created_at``,
``user.handle``, ``text``, ``geo``, ``place``, ``repost_of``, ``reply_to``, ``lang``).

The cursor tracks every file by name: how many lines and bytes of it were consumed and a hash
of its first bytes. A file is read from where it was left, whatever its name sorts as; a file
whose head changed or that shrank was replaced and is read again from its start (known ids are
recognised downstream). Symlinks and anything that is not a regular file are refused once, with
a reject, never followed. Shape::

    {"v": 2, "files": {"posts-002.jsonl": {"line": 17, "offset": 4211, "head": "9f2c..."}},
     "refused": {"evil.jsonl": "symlink"}}

The cursor of earlier versions, ``{"file": "posts-002.jsonl", "line": 17}``, is still read.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from social311.integrations.base import PluginConfig
from social311.integrations.sources.base import FetchResult, SourcePlugin
from social311.privacy import mask_personal_data, pseudonymise
from social311.records import Post, Reject, finite_number, finite_numbers, normalise_text

_EXCERPT_CHARS = 200
_HEAD_BYTES = 4096  # a replaced file is told apart from a grown one by its first bytes


class FileDropConfig(PluginConfig):
    """Settings of a file-drop source."""

    drop_dir: str
    pattern: str = "*.jsonl"
    city_handles: list[str] = []
    outbox_dir: str | None = None  # where replies are written; default: ``<drop_dir>/outbox``
    #: A last line without newline that is not JSON is retried on every fetch (its writer may
    #: still be writing); once the file has not changed for this long it is quarantined instead.
    truncated_line_grace_s: float = Field(3600, ge=0)


class _User(BaseModel):
    model_config = ConfigDict(extra="ignore")
    handle: str | None = None
    name: str | None = None


class _Geo(BaseModel):
    model_config = ConfigDict(extra="ignore")
    lat: float | None = None
    lon: float | None = None

    _numbers = field_validator("lat", "lon", mode="before")(finite_number)


class _Place(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str | None = None
    bbox: tuple[float, float, float, float] | None = None

    @field_validator("bbox", mode="before")
    @classmethod
    def _numbers(cls, value: object) -> object:
        return finite_numbers(value)


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
    """The text as written, minus control and invisible characters and surrounding whitespace."""
    return normalise_text(text)


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
        """Return posts from every line not consumed yet; bad lines and refused files become rejects.

        Args:
            cursor: what the previous fetch returned (see the module docstring), or None.
            pseudonym_key: key for the author pseudonyms.

        Returns:
            The posts, the rejects and the new cursor (identical text when nothing changed).
            A last line without a newline that is not valid JSON yet is left for the next
            fetch (its writer may still be writing it) unless the file is older than
            ``truncated_line_grace_s``: then it is quarantined and consumed.
        """
        folder = Path(self.config.drop_dir)
        if not folder.is_dir():
            reason = f"drop folder {folder} does not exist or is not a folder"
            return FetchResult(rejects=[self._reject(str(folder), reason, "")], cursor=cursor)
        state = _parse_cursor(cursor, folder)
        posts: list[Post] = []
        rejects: list[Reject] = []
        seen: dict[str, str] = {}
        for path in sorted(folder.glob(self.config.pattern)):
            refused = _refusal(path)
            if refused:
                if state["refused"].get(path.name) != refused:
                    rejects.append(self._reject(path.name, f"{refused} refused: only regular files are read", ""))
                    state["refused"][path.name] = refused
                continue
            state["refused"].pop(path.name, None)
            self._read_file(path, state, posts, rejects, seen, pseudonym_key)
        if not state["files"] and not state["refused"]:
            return FetchResult(posts=posts, rejects=rejects, cursor=cursor)
        new_cursor = json.dumps({"v": 2, **state}, sort_keys=True, separators=(",", ":"))
        return FetchResult(posts=posts, rejects=rejects, cursor=new_cursor)

    def _read_file(self, path: Path, state: dict, posts: list[Post], rejects: list[Reject],
                   seen: dict[str, str], key: str) -> None:
        entry = state["files"].get(path.name)
        try:
            # No following a symlink swapped in after the check, no blocking on a FIFO.
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
        except OSError as exc:
            rejects.append(self._reject(path.name, f"cannot open: {exc.strerror or exc}", ""))
            return
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            rejects.append(self._reject(path.name, "special file refused: only regular files are read", ""))
            return
        with os.fdopen(fd, "rb") as handle:
            head = handle.read(_HEAD_BYTES)
            size = os.fstat(handle.fileno()).st_size
            if entry is None or size < entry["offset"] or _digest(head[:entry["offset"]]) != entry["head"]:
                entry = {"line": 0, "offset": 0, "head": _digest(b"")}  # new or replaced: from the start
            handle.seek(entry["offset"])
            number, offset = entry["line"], entry["offset"]
            for line in handle:
                raw = line.decode("utf-8", errors="replace").rstrip("\r\n")
                ref = f"{path.name}:{number + 1}"
                if not line.endswith(b"\n") and not _is_json(raw):
                    age = time.time() - os.fstat(handle.fileno()).st_mtime
                    if age < self.config.truncated_line_grace_s:
                        break  # its writer may still be writing it: retried on the next fetch
                    rejects.append(self._reject(ref, "truncated last line: no newline and not valid JSON, "
                                                     f"file unchanged for {age:.0f} s", raw))
                    number, offset = number + 1, offset + len(line)
                    break
                number, offset = number + 1, offset + len(line)
                if not raw.strip():
                    continue
                try:
                    line.decode("utf-8")
                except UnicodeDecodeError as exc:
                    rejects.append(self._reject(ref, f"not UTF-8: {exc.reason} at byte {exc.start}", raw))
                    continue
                result = self._to_post(raw, ref, key)
                if isinstance(result, Reject):
                    rejects.append(result)
                elif result.post_id in seen:
                    reason = f"duplicate id {result.native_id!r}, first at {seen[result.post_id]}"
                    rejects.append(self._reject(ref, reason, raw))
                else:
                    seen[result.post_id] = ref
                    posts.append(result)
        if offset or path.name in state["files"]:
            # The head hash covers only consumed bytes: a growing half-written line never changes it.
            state["files"][path.name] = {"line": number, "offset": offset, "head": _digest(head[:offset])}

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
                return self._reject(ref, "text: empty after removing whitespace, control and invisible characters", raw)
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


def _parse_cursor(cursor: str | None, folder: Path) -> dict:
    """``{"files": {...}, "refused": {...}}`` from a cursor of this or the earlier version."""
    if not cursor:
        return {"files": {}, "refused": {}}
    try:
        data = json.loads(cursor)
        if data.get("v") == 2:
            files = {str(name): {"line": int(e["line"]), "offset": int(e["offset"]), "head": str(e["head"])}
                     for name, e in data["files"].items()}
            return {"files": files, "refused": {str(k): str(v) for k, v in data.get("refused", {}).items()}}
        return _from_v1(str(data["file"]), int(data["line"]), folder)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"file_drop cursor {cursor[:200]!r} is not a file_drop cursor") from exc


def _from_v1(last_file: str, last_line: int, folder: Path) -> dict:
    # v1 consumed every file sorting before ``last_file`` whole, and ``last_line`` lines of it.
    files = {}
    for path in sorted(folder.iterdir()):
        if path.name > last_file or _refusal(path):
            continue
        number, offset, head = 0, 0, b""
        with path.open("rb") as handle:
            head = handle.read(_HEAD_BYTES)
            handle.seek(0)
            for line in handle:
                if path.name == last_file and number >= last_line:
                    break
                if not line.endswith(b"\n"):
                    break  # v1 left a half-written last line for later: so do we
                number, offset = number + 1, offset + len(line)
        files[path.name] = {"line": number, "offset": offset, "head": _digest(head[:offset])}
    return {"files": files, "refused": {}}


def _refusal(path: Path) -> str | None:
    """Why ``path`` is not read ("symlink", "folder", "FIFO"...), or None for a regular file."""
    try:
        mode = path.lstat().st_mode
    except OSError as exc:
        return f"unreadable entry ({exc.strerror})"
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISREG(mode):
        return None
    kinds = {stat.S_ISDIR: "folder", stat.S_ISFIFO: "FIFO", stat.S_ISSOCK: "socket",
             stat.S_ISCHR: "character device", stat.S_ISBLK: "block device"}
    return next((name for test, name in kinds.items() if test(mode)), "special file")


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


def _is_json(raw: str) -> bool:
    try:
        json.loads(raw)
    except (json.JSONDecodeError, RecursionError):
        return False
    return True
