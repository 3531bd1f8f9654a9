"""The plugin registry: three entry-point groups, fixed once.

Built-in plugins register through the same entry points as third-party ones (see
pyproject.toml), so a city adds a source, GIS backend or ticketing system by installing a
package that declares, for example::

    [project.entry-points."social311.sources"]
    mastodon = "my_city_plugins.mastodon:MastodonSource"
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from social311.config import PluginRef

GROUPS = {
    "sources": "social311.sources",
    "gis": "social311.gis",
    "ticketing": "social311.ticketing",
}


class PluginNotFound(LookupError):
    """No plugin of that name is registered in the group."""


def available(kind: str) -> dict[str, Any]:
    """Name -> entry point of every installed plugin of one kind ("sources", "gis", "ticketing")."""
    return {ep.name: ep for ep in entry_points(group=GROUPS[kind])}


def load_class(kind: str, name: str) -> type:
    """The plugin class registered as ``name`` in the ``kind`` group."""
    eps = available(kind)
    if name not in eps:
        raise PluginNotFound(f"no {kind} plugin named {name!r}; installed: {sorted(eps)}")
    return eps[name].load()


def build(kind: str, ref: PluginRef, **context: Any) -> Any:
    """Instantiate a configured plugin: its config model validates ``ref.config``.

    Args:
        kind: "sources", "gis" or "ticketing".
        ref: the plugin reference from the city YAML.
        **context: keyword arguments the plugin kind's constructor takes besides its config
            (for example ``api_key`` for ticketing).
    """
    cls = load_class(kind, ref.plugin)
    config = cls.config_model.model_validate(ref.config)
    return cls(config, instance_name=ref.instance_name, **context)
