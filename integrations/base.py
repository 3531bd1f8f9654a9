"""What every plugin kind shares: a pydantic config model and an instance name."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict


class PluginConfig(BaseModel):
    """Base of plugin settings. Unknown keys are errors, so typos in a city YAML surface."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Plugin:
    """Base of the three plugin kinds. Subclasses set ``config_model``.

    A plugin never reads or writes ``os.environ`` itself: secrets are passed in by the
    orchestration layer, which resolves them from the environment at run time.
    """

    config_model: ClassVar[type[PluginConfig]] = PluginConfig

    def __init__(self, config: PluginConfig, *, instance_name: str) -> None:
        self.config = config
        self.instance_name = instance_name
