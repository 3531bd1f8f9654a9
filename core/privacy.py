"""Personal-data minimisation applied before anything leaves the pipeline.

Handles, e-mail addresses and phone numbers are masked in any text that is stored for display,
sent in a ticket or written to quarantine. Authors are kept only as a keyed hash.
"""

from __future__ import annotations

import hashlib
import hmac
import re

_HANDLE = re.compile(r"(?<![\w@])@\w+")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_URL = re.compile(r"https?://\S+")
# Phone numbers in the shapes people type them. Deliberately narrow: address ranges
# ("1200-1300 block"), years, ZIP+4, coordinates and city request numbers must survive.
_PHONE = re.compile(
    r"(?<![\w.+-])(?:"
    r"\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?){2,5}"  # international: +44 20 7946 0958
    r"|\(?\d{3}\)?[ .-]?\d{3}[ .-]\d{4}"  # North American: (312) 555-0147, 312.555.0147
    r"|\d{10,11}"  # undivided: 3125550147
    r"|\d{3}-\d{4}"  # local: 555-0147
    r")(?![\w]|[.-]\d)"
)


def _mask_plain(text: str) -> str:
    text = _EMAIL.sub("[email]", text)
    text = _HANDLE.sub("@user", text)
    return _PHONE.sub("[phone]", text)


def mask_personal_data(text: str, *, keep_urls: bool = False) -> str:
    """Replace handles, e-mail addresses, phone numbers (and URLs, unless kept) with tags.

    Kept URLs are left as they are except for handles in their path (``/@someone/``).
    """
    parts, pos = [], 0
    for url in _URL.finditer(text):
        parts.append(_mask_plain(text[pos:url.start()]))
        parts.append(_HANDLE.sub("@user", url.group()) if keep_urls else "[link]")
        pos = url.end()
    parts.append(_mask_plain(text[pos:]))
    return "".join(parts)


def pseudonymise(value: str, key: str) -> str:
    """A keyed, irreversible pseudonym for an identifier such as an author handle."""
    return hmac.new(key.encode(), value.strip().lower().encode(), hashlib.sha256).hexdigest()[:24]
