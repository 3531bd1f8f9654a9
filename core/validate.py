"""``social311 validate``: check a city deployment before its first run, without writing anything.

Each check gives one :class:`Finding` (``ok``, ``warn`` or ``fail``). What is checked: the
plugins named in the YAML and their settings, the files and folders they point at, the
environment variables the config names (the Open311 api_key), the Open311 catalog and the
``service_attributes`` codes against it and each service's definition, the ward boundaries
as the GIS plugin loads them, and the warehouse (opened read-only when it exists).
Nothing is written: no warehouse, no drop-folder cursor, no ticket.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path

from social311.config import CityConfig, PluginRef


@dataclass(frozen=True)
class Finding:
    """One check's result: ``level`` is ``ok``, ``warn`` or ``fail``."""

    level: str
    check: str
    detail: str

    def line(self) -> str:
        return f"{self.level.upper():<4}  {self.check}: {self.detail}"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def validate_city(cfg: CityConfig) -> list[Finding]:
    """Every check of a loaded city config, in order; never raises for a problem it can name."""
    findings: list[Finding] = []
    findings += _paths(cfg)
    findings += _env(cfg)
    for kind, refs in (("sources", cfg.sources), ("gis", (cfg.gis, *cfg.boundaries))):
        for ref in refs:
            findings += _plugin(kind, ref)
    findings += _gis(cfg)
    findings += _ticketing(cfg)
    findings += _warehouse(cfg)
    return findings


def _plugin(kind: str, ref: PluginRef, **context) -> list[Finding]:
    from social311.integrations import registry

    try:
        plugin = registry.build(kind, ref, **context)
    except Exception as exc:  # noqa: BLE001 - a plugin's own validation may raise anything; name it
        return [Finding("fail", f"{kind} plugin {ref.instance_name}", _one_line(exc))]
    close = getattr(plugin, "close", None)
    if callable(close):
        close()
    return [Finding("ok", f"{kind} plugin {ref.instance_name}", f"{ref.plugin} settings valid")]


def _paths(cfg: CityConfig) -> list[Finding]:
    """Files named ``*_path`` must exist; folders named ``*_dir`` should; the warehouse folder must be writable."""
    findings = []
    refs = [("sources", r) for r in cfg.sources] + [("gis", cfg.gis)] + [("gis", r) for r in cfg.boundaries] + [("ticketing", cfg.ticketing)]
    for kind, ref in refs:
        for key, value in ref.config.items():
            if not isinstance(value, str) or "://" in value:
                continue
            label = f"{kind} {ref.instance_name} {key}"
            if key.endswith("_path"):
                ok = Path(value).exists()
                findings.append(Finding("ok" if ok else "fail", label, value if ok else f"{value} does not exist"))
            elif key.endswith("_dir"):
                ok = Path(value).is_dir()
                findings.append(Finding("ok" if ok else "warn", label,
                                        value if ok else f"{value} does not exist yet (nothing to read until it does)"))
    parent = Path(cfg.duckdb_path).parent
    existing = next((p for p in (parent, *parent.parents) if p.exists()), None)
    writable = existing is not None and os.access(existing, os.W_OK)
    findings.append(Finding("ok" if writable else "fail", "duckdb_path",
                            str(cfg.duckdb_path) if writable else f"{parent} cannot be created or written"))
    return findings


def _env(cfg: CityConfig) -> list[Finding]:
    name = getattr(cfg.ticketing, "api_key_env", None)
    if not name:
        return [Finding("ok", "api_key", "no api_key_env configured (the server takes tickets without a key)")]
    if os.environ.get(name):
        return [Finding("ok", "api_key", f"${name} is set")]
    if cfg.filing_enabled:
        return [Finding("fail", "api_key", f"${name} is not set and filing_enabled is true: every POST would be refused")]
    return [Finding("warn", "api_key", f"${name} is not set (fine for a dry run; filing needs it)")]


def _gis(cfg: CityConfig) -> list[Finding]:
    from social311.integrations import registry

    findings = []
    for ref in (cfg.gis, *cfg.boundaries):
        label = f"wards {ref.instance_name}"
        try:
            wards = registry.build("gis", ref).wards()
        except Exception as exc:  # noqa: BLE001 - any load error is the finding
            findings.append(Finding("fail", label, _one_line(exc)))
            continue
        detail = f"{len(wards.wards)} wards, version {wards.version}, {len(wards.repairs)} repaired, {len(wards.rejects)} rejected"
        level = "ok"
        if not wards.wards:
            level, detail = "fail", f"no ward loaded ({len(wards.rejects)} rejected)"
        elif wards.rejects:
            level = "warn"
            detail += " (" + "; ".join(f"{r.record_ref}: {r.reason}" for r in wards.rejects[:3]) + ")"
        findings.append(Finding(level, label, detail))
    return findings


def _ticketing(cfg: CityConfig) -> list[Finding]:
    """The Open311 catalog, and every ``service_attributes`` code checked against it."""
    from social311.integrations import registry

    name = getattr(cfg.ticketing, "api_key_env", None)
    key = os.environ.get(name) if name else None
    label = f"ticketing plugin {cfg.ticketing.instance_name}"
    try:
        plugin = registry.build("ticketing", cfg.ticketing, api_key=key)
    except Exception as exc:  # noqa: BLE001 - the plugin's own validation
        return [Finding("fail", label, _one_line(exc))]
    findings = [Finding("ok", label, f"{cfg.ticketing.plugin} settings valid")]
    try:
        try:
            services = plugin.services()
        except Exception as exc:  # noqa: BLE001 - unreachable, refused, unparseable: all one line
            return [*findings, Finding("fail", "open311 catalog", _one_line(exc))]
        codes = {s.service_code for s in services}
        findings.append(Finding("ok" if codes else "fail", "open311 catalog", f"{len(codes)} services"))
        for code, values in cfg.service_attributes.items():
            where = f"service_attributes {code}"
            if code not in codes:
                near = difflib.get_close_matches(code, sorted(codes), n=1)
                hint = f" (did you mean {near[0]}?)" if near else ""
                findings.append(Finding("fail", where, f"{code} is not a service code of the catalog{hint}"))
                continue
            try:
                _, problems = plugin.check_attributes(code, dict(values))
            except Exception as exc:  # noqa: BLE001
                findings.append(Finding("fail", where, f"service definition not readable: {_one_line(exc)}"))
                continue
            findings.append(Finding("fail", where, "; ".join(problems)) if problems
                            else Finding("ok", where, f"{', '.join(values)} valid for {code}"))
    finally:
        close = getattr(plugin, "close", None)
        if callable(close):
            close()
    return findings


def _warehouse(cfg: CityConfig) -> list[Finding]:
    from social311.warehouse import WarehouseBusy, connect

    path = Path(cfg.duckdb_path)
    if not path.exists():
        return [Finding("ok", "warehouse", f"{path} will be created by the first run")]
    try:
        with connect(path, read_only=True) as con:
            tables = con.execute("select count(*) from duckdb_tables()").fetchone()[0]
    except WarehouseBusy as exc:
        return [Finding("warn", "warehouse", str(exc))]
    except Exception as exc:  # noqa: BLE001 - a corrupt or foreign file
        return [Finding("fail", "warehouse", _one_line(exc))]
    return [Finding("ok", "warehouse", f"{path} opens read-only ({tables} tables)")]
