"""Alembic migrations: a database made by the schema of commit cef2046 (before migrations) upgrades with
every row kept; the models and the migrations describe the same schema; concurrent openers migrate once.
Each on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from pprint import pformat

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, select, text
from sqlalchemy.orm import Session

from groundctl import migrations
from groundctl.runtime import tables  # noqa: F401  (every module's tables on the metadata)
from groundctl.runtime.store import Base, Store
from tests.storage import legacy_store_cef2046 as legacy

T0 = datetime(2026, 11, 1, 9, 30, tzinfo=timezone.utc)


def fill_legacy(url: str) -> dict[str, list[tuple]]:
    """Today's schema made the way today's code makes it, with rows in every table; the rows as stored."""
    engine = create_engine(url)
    legacy.Base.metadata.create_all(engine)
    with Session(engine) as s:
        r1 = legacy.Recipient(name="clinic", contact="ward 3", token_hash="a" * 64, created_at=T0)
        r2 = legacy.Recipient(name="farm", contact=None, token_hash="b" * 64, created_at=T0)
        s.add_all([r1, r2])
        s.flush()
        z = legacy.Zone(recipient_id=r1.id, name="front lawn", lat=-35.3569483, lon=149.193836, clear_radius_m=6.0,
                        elevation_m=584.5, polygon={"type": "Polygon", "coordinates": [[[149.1, -35.3], [149.2, -35.3],
                                                                                          [149.2, -35.4], [149.1, -35.3]]]},
                        instructions="by the gate", contact="0400 000 000", hub="cmac", reach={"cmac": {"ok": True}},
                        confirmed_at=T0, created_at=T0, updated_at=T0 + timedelta(minutes=5))
        s.add(z)
        s.add_all([legacy.FleetItem(kind="hub", name="cmac", data={"lat": -35.36, "lon": 149.16}, updated_at=T0),
                   legacy.FleetItem(kind="weather", name="current", data={"gust_mps": 3.0}, updated_at=T0)])
        av = legacy.AirspaceVersion(geojson={"type": "FeatureCollection", "features": []}, created_at=T0)
        s.add(av)
        s.flush()
        d = legacy.Delivery(recipient_id=r1.id, zone_id=z.id, zone={"name": "front lawn"}, parcel={"mass_kg": 1.0},
                            hub="cmac", airframe="x8", method="winch", vehicle="sim-1", airspace_version=av.id,
                            summary={"distance_m": 1234.5}, route=[[149.16, -35.36], [149.19, -35.35]],
                            verdict={"go": True}, state="en_route", created_at=T0)
        s.add(d)
        s.flush()
        for i, kind in enumerate(["planned", "dispatched", "uploaded", "taking_off", "en_route", "link_lost",
                                  "link_lost"]):
            s.add(legacy.Event(delivery_id=d.id, kind=kind, occurrence=2 if i == 6 else 1, time=T0 + timedelta(seconds=i),
                               lat=-35.36 + i * 1e-4, lon=149.16, alt_rel_m=30.0 if i > 3 else None,
                               message=f"step {i}", data={"i": i, "nested": [1, 2.5, "x"]}))
        s.add(legacy.EnergyFlight(airframe="x8", vehicle_kind="sim", vehicle="sim-1", delivery_id=d.id,
                                  predicted_wh=101.5, used_wh=97.25, phases={"cruise": 60.0}, flown_at=T0))
        s.commit()
    rows = snapshot(engine)
    engine.dispose()
    return rows


def snapshot(engine) -> dict[str, list[tuple]]:
    """Every row of every table of the old schema, read through the old schema's columns."""
    out = {}
    with engine.connect() as c:
        for t in legacy.Base.metadata.sorted_tables:
            out[t.name] = [tuple(r) for r in c.execute(select(t).order_by(*t.primary_key.columns))]
    return out


def test_database_made_by_todays_schema_upgrades_without_losing_a_row(db_url):
    before = fill_legacy(db_url)
    assert sum(map(len, before.values())) == 2 + 1 + 2 + 1 + 1 + 7 + 1

    store = Store(db_url)  # the current code opens it: stamps 0001, upgrades to head
    try:
        with store.engine.connect() as c:
            assert c.execute(text("select version_num from alembic_version")).scalar() == migrations.head()
        assert snapshot(store.engine) == before
        # and the current models read the old rows
        with store.session() as s:
            evs = store.events(s, 1)
            assert [e.kind for e in evs] == ["planned", "dispatched", "uploaded", "taking_off", "en_route",
                                             "link_lost", "link_lost"]
            assert evs[0].time == T0 and evs[-1].data == {"i": 6, "nested": [1, 2.5, "x"]}
    finally:
        store.close()

    again = Store(db_url)  # a second open changes nothing
    try:
        assert snapshot(again.engine) == before
    finally:
        again.close()


def _diff(url: str, metadata, revision: str = "head") -> list:
    engine = create_engine(url)
    try:
        migrations.upgrade(engine, revision)
        with engine.connect() as c:
            return compare_metadata(MigrationContext.configure(c, opts={"compare_type": True}), metadata)
    finally:
        engine.dispose()


def test_models_and_migrations_agree(db_url):
    diff = _diff(db_url, Base.metadata)
    assert diff == [], ("the models declare what no migration makes: write one in groundctl/migrations/versions "
                        "(groundctl/migrations/__init__.py says how)\n" + pformat(diff))


def test_revision_0001_is_the_schema_before_migrations(db_url):
    diff = _diff(db_url, legacy.Base.metadata, "0001")
    assert diff == [], pformat(diff)


def test_processes_opening_a_new_database_at_once_migrate_it_once(db_url):
    errors: list[BaseException] = []
    stores: list[Store] = []

    def open_store() -> None:
        try:
            stores.append(Store(db_url))
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=open_store) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        assert errors == []
        with stores[0].engine.connect() as c:
            assert c.execute(text("select version_num from alembic_version")).scalars().all() == [migrations.head()]
    finally:
        for s in stores:
            s.close()


def test_database_with_tables_made_from_models_before_their_migration_upgrades(db_url):
    """A development build created some new tables from the models (no migration yet, the store said so):
    the migration that adds them leaves those alone and adds the rest."""
    engine = create_engine(db_url)
    migrations.upgrade(engine, "0001")
    early = [Base.metadata.tables[name] for name in ("flight_leases", "flight_commands")]
    Base.metadata.create_all(engine, tables=early)
    engine.dispose()
    Store(db_url).close()
    assert _diff(db_url, Base.metadata) == []
