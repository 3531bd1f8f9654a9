"""PostGIS GIS: ward boundaries from the city's own PostGIS table, through GeoAlchemy2.

Schema, table, id/name/geometry columns and the SRID are configurable; the SRID defaults to the
one stored with each geometry (``srid: 0`` rows need it set). Geometries travel as EWKB and go
through the same normalisation as every other backend, so PostGIS, Shapefile, GeoJSON and
ArcGIS give the same wards. The password is never in the config: the orchestration layer reads
the variable named by ``password_env`` and hands the value to the plugin.
"""

from __future__ import annotations

import sqlalchemy as sa
from geoalchemy2 import Geometry
from geoalchemy2.shape import to_shape

from social311.integrations.gis.base import GISPlugin
from social311.integrations.gis.normalise import BoundaryConfig, RawWard, normalise_wards
from social311.records import WardSet


class PostGISError(RuntimeError):
    """The database cannot be reached or the table cannot be read."""


class PostGISConfig(BoundaryConfig):
    """Where the boundaries live. ``url`` has no password (``password_env`` names its variable)."""

    url: str  # e.g. postgresql+psycopg://gis_reader@gis.city.gov:5432/gis
    password_env: str | None = None
    table_schema: str = "public"
    table: str
    id_column: str = "ward_id"
    name_column: str | None = None
    geometry_column: str = "geom"
    srid: int | None = None  # declare it when the table stores SRID 0
    connect_timeout_s: int = 10


class PostGISGIS(GISPlugin):
    """Wards from a PostGIS table, in any SRID, reprojected to EPSG:4326."""

    config_model = PostGISConfig
    config: PostGISConfig

    def __init__(self, config: PostGISConfig, *, instance_name: str, password: str | None = None) -> None:
        super().__init__(config, instance_name=instance_name)
        self._password = password

    def _table(self) -> sa.Table:
        cfg = self.config
        columns = [sa.Column(cfg.id_column), sa.Column(cfg.geometry_column, Geometry(srid=cfg.srid or -1))]
        if cfg.name_column:
            columns.append(sa.Column(cfg.name_column))
        return sa.Table(cfg.table, sa.MetaData(), *columns, schema=cfg.table_schema)

    def wards(self) -> WardSet:
        """The boundary set in EPSG:4326; broken rows land in ``rejects``.

        Raises:
            PostGISError: the database or table cannot be read (the message never holds the password).
        """
        cfg = self.config
        table = self._table()
        connect_args = {"connect_timeout": cfg.connect_timeout_s}
        if self._password:
            connect_args["password"] = self._password
        engine = sa.create_engine(cfg.url, connect_args=connect_args, poolclass=sa.pool.NullPool)
        geom = table.c[cfg.geometry_column]
        # The stored SRID is asked for explicitly: an element's own srid is unreliable for SRID 0.
        cols = [table.c[cfg.id_column], geom, geom.ST_SRID()] + ([table.c[cfg.name_column]] if cfg.name_column else [])
        try:
            with engine.connect() as con:
                rows = con.execute(sa.select(*cols).order_by(table.c[cfg.id_column])).fetchall()
        except sa.exc.SQLAlchemyError as exc:
            raise PostGISError(f"cannot read {cfg.table_schema}.{cfg.table}: {str(getattr(exc, 'orig', exc)).splitlines()[0][:300]}") from None
        finally:
            engine.dispose()
        raws, srids = [], set()
        for index, row in enumerate(rows):
            props = {cfg.id_column: row[0]} | ({cfg.name_column: row[3]} if cfg.name_column else {})
            ref = f"{cfg.table_schema}.{cfg.table}#{index}"
            if row[1] is None:
                raws.append(RawWard(ref, props, problem="no geometry"))
                continue
            srids.add(row[2])
            try:
                raws.append(RawWard(ref, props, to_shape(row[1])))
            except Exception as exc:  # noqa: BLE001 - any undecodable EWKB is one bad row, not a failed load
                raws.append(RawWard(ref, props, problem=f"unreadable geometry: {exc}"))
        declared = cfg.srid or (next(iter(srids)) if len(srids) == 1 and 0 not in srids else None)
        if len(srids) > 1 and not cfg.srid:
            raws = [RawWard(r.ref, r.props, problem=f"mixed SRIDs {sorted(srids)} in one table; set srid") for r in raws]
        local = cfg.model_copy(update={"ward_id_property": cfg.id_column, "ward_name_property": cfg.name_column})
        return normalise_wards(raws, local, source=self.instance_name, declared_crs=declared)
