"""What the masking rules catch on real texts: masked spans by kind, with their shapes only.

Reads every text of ``../shared/data/tweets/*.csv`` (or ``SOCIAL311_SHARED_DATA``), masks it with
``social311.privacy.mask_personal_data`` and counts the spans replaced by ``[phone]`` and
``[email]``, printing each span's *shape* (digits as 9, letters as x) so false positives can be
judged without printing anyone's number or address.

Usage::

    .venv/bin/python bench/privacy_real_data.py [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import csv
import difflib
import os
import re
import sys
from collections import Counter
from pathlib import Path

from social311.privacy import _EMAIL, mask_personal_data

REPO = Path(__file__).resolve().parents[1]


def texts(data_dir: Path) -> list[str]:
    out = []
    for path in sorted((data_dir / "tweets").glob("*.csv")):
        with path.open(encoding="utf-8", errors="replace") as handle:
            reader = csv.DictReader(handle)
            column = next((c for c in reader.fieldnames or [] if c and c.lower() in ("text", "tweet", "tweet_text")), None)
            if column:
                out += [row[column] or "" for row in reader]
    return out


def shape(span: str) -> str:
    return re.sub(r"[^\W\d_]", "x", re.sub(r"\d", "9", span))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=os.environ.get("SOCIAL311_SHARED_DATA", REPO.parent / "shared" / "data"))
    data_dir = Path(parser.parse_args().data_dir)
    if not (data_dir / "tweets").is_dir():
        print(f"no shared data at {data_dir}: nothing to measure")
        return 0
    corpus = texts(data_dir)
    spans: dict[str, Counter] = {"[phone]": Counter()}
    hosts: Counter = Counter()
    for text in corpus:
        masked = mask_personal_data(text)
        if masked == text:
            continue
        for address in _EMAIL.findall(text):  # e-mails: dotted host or not (bob@localhost, word@handle)
            hosts["dotted host" if "." in address.split("@", 1)[1] else "host without a dot"] += 1
        matcher = difflib.SequenceMatcher(None, text, masked, autojunk=False)
        for op, i1, i2, j1, j2 in matcher.get_opcodes():
            for tag, counter in spans.items():
                if op != "equal" and tag in masked[j1:j2]:
                    counter[shape(text[i1:i2])] += 1
    print(f"{len(corpus):,} texts")
    for tag, counter in spans.items():
        print(f"{tag}: {sum(counter.values())} spans; most common shapes:")
        for form, n in counter.most_common(15):
            print(f"  {n:4d}  {form}")
    print(f"[email]: {sum(hosts.values())} addresses: {dict(hosts)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
