"""Prepare and run the bundled demo city: posts in a drop folder, a local Open311 sandbox.

``prepare_demo`` writes a working copy of ``demo/city.yaml`` into the work folder with absolute
paths and the sandbox's address, generates the demo posts once (seeded, so a second run sees no
new posts and files nothing new), seeds the sandbox with a 311 history of past requests once
(``history.py``), and keeps the sandbox running while the pipeline runs.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import yaml

DEMO_DIR = Path(__file__).resolve().parent
DEMO_API_KEY = "demo-key"  # the sandbox's own key, not a secret of any real system
API_KEY_ENV = "SOCIAL311_OPEN311_API_KEY"


def write_demo_posts(drop_dir: Path, *, seed: int = 0, batch: int = 1) -> Path | None:
    """Write one batch of generated posts (with a few malformed lines) unless it exists already."""
    from social311.demo.generate import generate_demo, generate_malformed

    drop_dir.mkdir(parents=True, exist_ok=True)
    path = drop_dir / f"posts-{batch:04d}.jsonl"
    if path.exists():
        return None
    import json

    records, _truth = generate_demo(seed=seed + batch - 1)
    lines = [json.dumps(r, ensure_ascii=False) for r in records]
    # Bad lines sit among good ones, as in a real export.
    for offset, bad in enumerate(generate_malformed(seed + batch - 1)):
        lines.insert(min(len(lines), 7 + offset * 11), bad)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp.rename(path)  # a source never sees a half-written file
    return path


def demo_config(workdir: Path, endpoint: str) -> Path:
    """Write the demo city's YAML for this work folder and sandbox endpoint; return its path."""
    data = yaml.safe_load((DEMO_DIR / "city.yaml").read_text(encoding="utf-8"))
    data["duckdb_path"] = str(workdir / "social311.duckdb")
    data["report_dir"] = str(workdir / "report")
    for source in data["sources"]:
        source.setdefault("config", {})["drop_dir"] = str(workdir / "drop")
    gis = data["gis"]["config"]
    for key in ("wards_path", "places_path"):
        if gis.get(key):
            gis[key] = str((DEMO_DIR / gis[key]).resolve())
    data["ticketing"]["config"]["endpoint"] = endpoint
    path = workdir / "city.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


@contextlib.contextmanager
def prepare_demo(workdir: Path, *, seed: int = 0, port: int = 0) -> Iterator[Path]:
    """Posts, config and a running sandbox for the demo; yields the city YAML path.

    Args:
        workdir: where the warehouse, drop folder, sandbox database and report live.
        seed: seed of the post generator.
        port: the sandbox's port (0: any free one). A fixed port lets ``social311 sandbox``
            serve the same endpoint later, for runs started from the Dagster UI.
    """
    from social311.demo.history import seed_sandbox
    from social311.integrations.ticketing.sandbox import SandboxServer

    workdir.mkdir(parents=True, exist_ok=True)
    write_demo_posts(workdir / "drop", seed=seed)
    os.environ.setdefault(API_KEY_ENV, DEMO_API_KEY)
    server = SandboxServer(port=port, db_path=str(workdir / "sandbox.sqlite"), api_keys=(os.environ[API_KEY_ENV],)).start()
    try:
        # The city's past requests, which the pipeline pulls through GET requests and learns from.
        seed_sandbox(server, seed=seed)
        yield demo_config(workdir, server.url)
    finally:
        server.stop()
