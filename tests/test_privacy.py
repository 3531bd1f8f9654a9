"""Personal-data masking and author pseudonyms (social311.privacy), table-driven.

Numbers that look like phone numbers but are not personal data (address ranges, years, ZIP+4,
coordinates, request numbers) must survive masking.
"""

from __future__ import annotations

import re

import pytest

from social311.privacy import mask_personal_data, pseudonymise


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        # phone numbers in the shapes residents type them
        ("call 312-555-0147 now", "call [phone] now"),
        ("(312) 555-0147", "[phone]"),
        ("+1 312 555 0147", "[phone]"),
        ("3125550147", "[phone]"),
        ("555-0147", "[phone]"),
        ("text 312.555.0147!", "text [phone]!"),
        ("+44 20 7946 0958", "[phone]"),
        # e-mail addresses, before handles so the domain is not read as a handle
        ("mail jo.b+x@mail.example.co.uk ok", "mail [email] ok"),
        ("resident.demo@example.com, thanks", "[email], thanks"),
        ("@alice@mastodon.social saw it", "@[email] saw it"),
        # handles
        ("@DemoCity311 pothole", "@user pothole"),
        ("cc @cdot_chicago and @josé", "cc @user and @user"),
        ("(@streets)", "(@user)"),
        # URLs, unless kept
        ("see https://example.com/a?b=1 x", "see [link] x"),
        ("http://t.co/AbC123", "[link]"),
        # what must survive: not personal data
        ("foo@bar", "[email]"),  # an address on any host (bob@localhost) is an address
        ("request 72355 is open", "request 72355 is open"),
        ("Pothole at 1200 W Madison St", "Pothole at 1200 W Madison St"),
        ("on 2024-05-06 at 10:30", "on 2024-05-06 at 10:30"),
        ("$1,250,000 budget", "$1,250,000 budget"),
        ("pay 12.50 and 3.75", "pay 12.50 and 3.75"),
        ("at 41.88123 -87.63123", "at 41.88123 -87.63123"),
        ("call 311 or 911", "call 311 or 911"),
        ("", ""),
    ],
)
def test_mask_personal_data(text: str, masked: str) -> None:
    assert mask_personal_data(text) == masked


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("see https://example.com/a?b=1 x", "see https://example.com/a?b=1 x"),
        ("https://social.example/@someone/12", "https://social.example/@user/12"),
        ("mail jo@example.com at https://x.org", "mail [email] at https://x.org"),
    ],
)
def test_mask_keeps_urls_when_asked(text: str, masked: str) -> None:
    assert mask_personal_data(text, keep_urls=True) == masked


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("the 1200-1300 block of W Madison", "the 1200-1300 block of W Madison"),  # address ranges in 311 text
        ("broken since 2019-2023", "broken since 2019-2023"),
        ("lat 41.878123, lon -87.629812", "lat 41.878123, lon -87.629812"),  # 6-decimal coordinates
        ("Chicago request SR24-00123456", "Chicago request SR24-00123456"),  # the city's own request numbers
        ("ZIP 60602-1234", "ZIP 60602-1234"),
    ],
)
def test_numbers_that_are_not_phones_survive(text: str, masked: str) -> None:
    assert mask_personal_data(text) == masked


def test_kept_urls_are_not_altered() -> None:
    url = "https://example.com/report/12345678"
    assert mask_personal_data(url, keep_urls=True) == url


def test_long_handles_are_masked_whole() -> None:
    assert mask_personal_data("@" + "a" * 35 + " hi") == "@user hi"


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        (("resident1", "k"), ("resident1", "k"), True),
        (("Resident1", "k"), ("resident1", "k"), True),  # handles are case-insensitive
        ((" resident1 ", "k"), ("resident1", "k"), True),
        (("resident1", "k"), ("resident1", "other key"), False),  # keyed: no lookup table across deployments
        (("resident1", "k"), ("resident2", "k"), False),
        (("@resident1", "k"), ("resident1", "k"), False),  # callers strip the '@' (file_drop does)
    ],
)
def test_pseudonymise(a: tuple[str, str], b: tuple[str, str], same: bool) -> None:
    assert (pseudonymise(*a) == pseudonymise(*b)) is same


def test_pseudonym_is_short_hex_and_hides_the_handle() -> None:
    value = pseudonymise("resident1", "k")
    assert re.fullmatch(r"[0-9a-f]{24}", value)
    assert "resident" not in value
