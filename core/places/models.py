"""Administrative places: county > township > village (统计用区划代码), and service stations."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.authz import Principal, village_condition
from core.db import Base, Model, fk

# The coordinators table (core.people.models builds on this module, so it cannot be imported
# here): just the two columns a station's visibility needs.
_coordinators = sa.table("coordinators", sa.column("id"), sa.column("station_id"))

station_villages = sa.Table(
    "station_villages",
    Base.metadata,
    sa.Column("station_id", sa.BigInteger().with_variant(sa.Integer, "sqlite"),
              sa.ForeignKey("stations.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("village_id", sa.BigInteger().with_variant(sa.Integer, "sqlite"),
              sa.ForeignKey("villages.id", ondelete="RESTRICT"), primary_key=True),
)


class County(Model):
    """A county (6-digit division code), the unit a branch of the bank serves."""

    __tablename__ = "counties"
    __noun__ = "county"

    code: Mapped[str] = mapped_column(sa.String(6), unique=True)
    name: Mapped[str] = mapped_column(sa.String(100))
    townships: Mapped[list[Township]] = relationship(back_populates="county")

    @classmethod
    def visible_to(cls, principal: Principal) -> sa.ColumnElement[bool]:
        """Staff see every county; others the counties of the villages they see."""
        if principal.is_staff:
            return sa.true()
        return cls.id.in_(sa.select(Township.county_id).where(Township.visible_to(principal)))


class Township(Model):
    """A township (乡镇, 9-digit code); its first 6 digits are its county's code."""

    __tablename__ = "townships"
    __noun__ = "township"

    code: Mapped[str] = mapped_column(sa.String(9), unique=True)
    name: Mapped[str] = mapped_column(sa.String(100))
    county_id: Mapped[int] = fk("counties.id", index=True)
    county: Mapped[County] = relationship(back_populates="townships")
    villages: Mapped[list[Village]] = relationship(back_populates="township")

    @classmethod
    def visible_to(cls, principal: Principal) -> sa.ColumnElement[bool]:
        """Staff see every township; others the townships of the villages they see."""
        if principal.is_staff:
            return sa.true()
        return cls.id.in_(sa.select(Village.township_id).where(Village.visible_to(principal)))


class Village(Model):
    """A village (行政村, 12-digit code); its first 9 digits are its township's code."""

    __tablename__ = "villages"
    __noun__ = "village"

    code: Mapped[str] = mapped_column(sa.String(12), unique=True)
    name: Mapped[str] = mapped_column(sa.String(100))
    township_id: Mapped[int] = fk("townships.id", index=True)
    township: Mapped[Township] = relationship(back_populates="villages")

    @classmethod
    def visible_to(cls, principal: Principal) -> sa.ColumnElement[bool]:
        return village_condition(cls.id, principal,
                                 own=lambda p: cls.id.in_(sorted(p.village_ids)))


class Station(Model):
    """A village financial service station (村级金融服务站), serving one or more villages."""

    __tablename__ = "stations"
    __noun__ = "station"

    name: Mapped[str] = mapped_column(sa.String(100))
    township_id: Mapped[int] = fk("townships.id", index=True)
    township: Mapped[Township] = relationship()
    villages: Mapped[list[Village]] = relationship(secondary=station_villages,
                                                   order_by="Village.code")

    @classmethod
    def visible_to(cls, principal: Principal) -> sa.ColumnElement[bool]:
        """Staff see every station; a coordinator its own station; farmers none."""
        if principal.is_staff:
            return sa.true()
        if principal.kind == "coordinator":
            own = sa.select(_coordinators.c.station_id).where(_coordinators.c.id == principal.id)
            return cls.id.in_(own)
        return sa.false()
