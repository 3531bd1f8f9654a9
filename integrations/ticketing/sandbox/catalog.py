"""The sandbox city's service catalog: a realistic default, or one loaded from JSON/YAML.

A catalog file is a list of services (or ``{"services": [...]}``); each service may carry the
``attributes`` of its definition, in the spec's own field names.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

Datatype = Literal["string", "number", "datetime", "text", "singlevaluelist", "multivaluelist"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CatalogValue(_Strict):
    """One allowed value of a list attribute."""

    key: str
    name: str


class CatalogAttribute(_Strict):
    """One attribute of a service definition."""

    code: str
    datatype: Datatype
    description: str
    order: int = Field(ge=1)
    variable: bool = True
    required: bool = False
    datatype_description: str | None = None
    values: list[CatalogValue] = Field(default_factory=list)

    @model_validator(mode="after")
    def _lists_have_values(self) -> CatalogAttribute:
        if self.datatype.endswith("valuelist") and not self.values:
            raise ValueError(f"list attribute {self.code!r} needs values")
        return self


class CatalogService(_Strict):
    """One service of the sandbox catalog (mutable: tests switch its ``type``)."""

    service_code: str
    service_name: str
    description: str
    keywords: str = ""
    group: str = ""
    type: Literal["realtime", "batch", "blackbox"] = "realtime"
    agency_responsible: str = ""
    attributes: list[CatalogAttribute] = Field(default_factory=list)

    @property
    def metadata(self) -> bool:
        return bool(self.attributes)


def _v(*pairs: tuple[str, str]) -> list[CatalogValue]:
    return [CatalogValue(key=k, name=n) for k, n in pairs]


_POTHOLE_ATTRIBUTES = [
    CatalogAttribute(code="SAFETY", datatype="text", order=1, variable=False,
                     description="If the hole has caused a crash or is a danger right now, call 911 instead."),
    CatalogAttribute(code="SIZE", datatype="singlevaluelist", order=2, required=True,
                     description="About how big is the pothole?",
                     values=_v(("S", "Smaller than a dinner plate"), ("M", "Up to a car tyre"), ("L", "Larger than a car tyre"))),
    CatalogAttribute(code="DEPTH_CM", datatype="number", order=3, description="Approximate depth in centimetres",
                     datatype_description="A number, e.g. 8"),
    CatalogAttribute(code="LANES", datatype="multivaluelist", order=4, description="Which parts of the road are affected?",
                     values=_v(("CURB", "Curb lane"), ("TRAVEL", "Travel lane"), ("BIKE", "Bike lane"), ("TURN", "Turning lane"))),
    CatalogAttribute(code="SEEN_AT", datatype="datetime", order=5, description="When did you first notice it?"),
    CatalogAttribute(code="LANDMARK", datatype="string", order=6, description="Nearest house number or landmark"),
    CatalogAttribute(code="NOTES", datatype="text", order=7, description="Anything else the crew should know"),
]

DEFAULT_CATALOG: tuple[CatalogService, ...] = (
    CatalogService(service_code="POTHOLE", service_name="Pothole in Street", group="Streets & Sidewalks",
                   description="Report a pothole or broken pavement in a street or alley.",
                   keywords="pothole, road, pavement, street repair", agency_responsible="Department of Transportation",
                   attributes=_POTHOLE_ATTRIBUTES),
    CatalogService(service_code="STREETLIGHT", service_name="Street Light Out", group="Streets & Sidewalks",
                   description="Report a street light that is dark, flickering or on during the day.",
                   keywords="street light, lamp, dark, outage", agency_responsible="Bureau of Electricity"),
    CatalogService(service_code="LITTER_BIN", service_name="Overflowing Litter Bin", group="Sanitation",
                   description="Report a public litter basket that is full or overflowing.",
                   keywords="trash, litter, bin, basket, overflowing", agency_responsible="Department of Sanitation"),
    CatalogService(service_code="MISSED_PICKUP", service_name="Missed Garbage Pickup", group="Sanitation",
                   description="Report household garbage or recycling that was not collected on its scheduled day.",
                   keywords="garbage, trash, recycling, collection, missed", agency_responsible="Department of Sanitation"),
    CatalogService(service_code="FLOODING", service_name="Street Flooding / Blocked Storm Drain", group="Water & Sewers",
                   description="Report standing water on a street or a storm drain blocked by debris.",
                   keywords="flooding, storm drain, catch basin, standing water", agency_responsible="Water Department"),
    CatalogService(service_code="GRAFFITI", service_name="Graffiti Removal", group="Sanitation",
                   description="Report graffiti on public property or on a building visible from the street.",
                   keywords="graffiti, tagging, vandalism, paint", agency_responsible="Department of Sanitation"),
    CatalogService(service_code="TREE_DEBRIS", service_name="Fallen Tree or Tree Debris", group="Parks & Trees",
                   description="Report a fallen tree, a hanging limb or branches blocking a street or sidewalk.",
                   keywords="tree, branch, limb, fallen, storm damage", agency_responsible="Forestry Division"),
    CatalogService(service_code="SIDEWALK_BLOCKED", service_name="Blocked Sidewalk", group="Streets & Sidewalks",
                   description="Report a sidewalk blocked by construction, debris, snow or parked vehicles.",
                   keywords="sidewalk, blocked, obstruction, accessibility", agency_responsible="Department of Transportation"),
    CatalogService(service_code="NOISE", service_name="Noise Complaint", group="Quality of Life",
                   description="Report loud music, construction after hours or other ongoing noise.",
                   keywords="noise, loud, music, construction", agency_responsible="Environmental Protection"),
    CatalogService(service_code="ABANDONED_VEHICLE", service_name="Abandoned Vehicle", group="Parking & Vehicles",
                   description="Report a vehicle that has not moved for several days or has no plates.",
                   keywords="abandoned, car, vehicle, no plates", type="batch", agency_responsible="Police Department"),
    CatalogService(service_code="TRAFFIC_SIGN", service_name="Damaged Traffic Sign", group="Parking & Vehicles",
                   description="Report a stop sign or other traffic sign that is down, bent, faded or missing.",
                   keywords="sign, stop sign, traffic sign, damaged", agency_responsible="Department of Transportation"),
)


def default_catalog() -> list[CatalogService]:
    """A fresh, mutable copy of the default catalog."""
    return [s.model_copy(deep=True) for s in DEFAULT_CATALOG]


def load_catalog(path: str | Path) -> list[CatalogService]:
    """Read a catalog from a ``.json``, ``.yaml`` or ``.yml`` file.

    Raises:
        ValueError: the file is unreadable, duplicates a code or fails validation.
    """
    path = Path(path)
    raw = path.read_text(encoding="utf-8")
    data = json.loads(raw) if path.suffix.lower() == ".json" else yaml.safe_load(raw)
    if isinstance(data, dict):
        data = data.get("services", [])
    services = [CatalogService.model_validate(item) for item in data or []]
    codes = [s.service_code for s in services]
    if not services or len(codes) != len(set(codes)):
        raise ValueError(f"catalog {path} must list services with unique service_codes")
    return services
