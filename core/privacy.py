"""Personal-data minimisation applied before anything leaves the pipeline.

Handles, e-mail addresses and phone numbers are masked in any text that is stored for display,
sent in a ticket or written to quarantine. Authors are kept only as a keyed hash.

Phone numbers are found by ``phonenumbers`` (Google's libphonenumber) in every form it knows
(``312 5550199``, ``1-800-555-0199``, ``+33 1 42 68 53 00``, ``312/555/0199``) for the region
the city is in, plus the narrow patterns below for local forms it does not match (``555-0147``).
Invisible characters next to ``@`` or inside a handle or address are removed first, so
``@``+ZWSP+``handle`` is a handle, and an address on any host (``bob@localhost``) is an address.
"""

from __future__ import annotations

import hashlib
import hmac
import re

import phonenumbers

#: The region phone numbers without a country code are read in (a city config may change it).
DEFAULT_REGION = "US"

# Zero-width and bidi controls, and the full-width / small "@" that read as "@".
_INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff\u180e\u200e\u200f\u061c\u202a-\u202e\u2066-\u2069\u00ad"
_HIDDEN_IN_ID = re.compile(f"(?<=[@A-Za-z0-9_.+-])[{_INVISIBLE}]+|[{_INVISIBLE}]+(?=[@A-Za-z0-9_.+-])")
_AT_LOOKALIKES = re.compile("[\uff20\ufe6b]")
_HANDLE = re.compile(r"(?<![\w@])@\w+")
# Any host, dotted or not: bob@localhost, jo@intranet, alice@mastodon.social.
_EMAIL = re.compile(r"[\w.+-]*\w@\w[\w-]*(?:\.[\w-]+)*")
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


def _mask_phones(text: str, region: str) -> str:
    parts, pos = [], 0
    for match in phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.VALID):
        parts.append(text[pos:match.start])
        parts.append("[phone]")
        pos = match.end
    parts.append(text[pos:])
    return _PHONE.sub("[phone]", "".join(parts))


def _mask_plain(text: str, region: str) -> str:
    text = _EMAIL.sub("[email]", text)
    text = _HANDLE.sub("@user", text)
    return _mask_phones(text, region)


def mask_personal_data(text: str, *, keep_urls: bool = False, region: str = DEFAULT_REGION) -> str:
    """Replace handles, e-mail addresses, phone numbers (and URLs, unless kept) with tags.

    Kept URLs are left as they are except for handles in their path (``/@someone/``).

    Args:
        text: any text.
        keep_urls: keep links (their handles masked) instead of ``[link]``.
        region: ISO 3166 code numbers without a country code are read in (``US``: 312 5550199).
    """
    text = _HIDDEN_IN_ID.sub("", _AT_LOOKALIKES.sub("@", text))
    parts, pos = [], 0
    for url in _URL.finditer(text):
        parts.append(_mask_plain(text[pos:url.start()], region))
        parts.append(_HANDLE.sub("@user", url.group()) if keep_urls else "[link]")
        pos = url.end()
    parts.append(_mask_plain(text[pos:], region))
    return "".join(parts)


def pseudonymise(value: str, key: str) -> str:
    """A keyed, irreversible pseudonym for an identifier such as an author handle."""
    return hmac.new(key.encode(), value.strip().lower().encode(), hashlib.sha256).hexdigest()[:24]
