"""The schema as of commit cef2046, the last one made by create_all alone.

Written out here rather than taken from the models, so that it stays what those databases are while the
models move on. Timestamps are naive UTC in a plain DateTime column (the models' UTCDateTime type).

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "airspace_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("geojson", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("recipient_id", sa.Integer(), nullable=False),
        sa.Column("zone_id", sa.Integer(), nullable=False),
        sa.Column("zone", sa.JSON(), nullable=False),
        sa.Column("parcel", sa.JSON(), nullable=False),
        sa.Column("hub", sa.String(length=100), nullable=True),
        sa.Column("airframe", sa.String(length=100), nullable=True),
        sa.Column("method", sa.String(length=20), nullable=True),
        sa.Column("vehicle", sa.String(length=100), nullable=True),
        sa.Column("airspace_version", sa.Integer(), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=True),
        sa.Column("route", sa.JSON(), nullable=True),
        sa.Column("verdict", sa.JSON(), nullable=True),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    for col in ("created_at", "recipient_id", "state", "vehicle", "zone_id"):
        op.create_index(f"ix_deliveries_{col}", "deliveries", [col], unique=False)
    op.create_table(
        "energy_flights",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("airframe", sa.String(length=100), nullable=False),
        sa.Column("vehicle_kind", sa.String(length=20), nullable=False),
        sa.Column("vehicle", sa.String(length=100), nullable=True),
        sa.Column("delivery_id", sa.Integer(), nullable=True),
        sa.Column("predicted_wh", sa.Float(), nullable=False),
        sa.Column("used_wh", sa.Float(), nullable=False),
        sa.Column("phases", sa.JSON(), nullable=False),
        sa.Column("flown_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_energy_flights_airframe", "energy_flights", ["airframe"], unique=False)
    op.create_index("ix_energy_flights_flown_at", "energy_flights", ["flown_at"], unique=False)
    op.create_table(
        "fleet_items",
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "name"),
    )
    op.create_table(
        "recipients",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("contact", sa.String(length=200), nullable=True),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_recipients_token_hash", "recipients", ["token_hash"], unique=True)
    op.create_table(
        "delivery_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("delivery_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("occurrence", sa.Integer(), nullable=False),
        sa.Column("time", sa.DateTime(), nullable=False),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("alt_rel_m", sa.Float(), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["delivery_id"], ["deliveries.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("delivery_id", "kind", "occurrence", name="uq_event_occurrence"),
    )
    op.create_index("ix_delivery_events_delivery_id", "delivery_events", ["delivery_id"], unique=False)
    op.create_table(
        "zones",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("recipient_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("clear_radius_m", sa.Float(), nullable=False),
        sa.Column("elevation_m", sa.Float(), nullable=True),
        sa.Column("polygon", sa.JSON(), nullable=True),
        sa.Column("instructions", sa.Text(), nullable=True),
        sa.Column("contact", sa.String(length=200), nullable=True),
        sa.Column("hub", sa.String(length=100), nullable=True),
        sa.Column("reach", sa.JSON(), nullable=True),
        sa.Column("confirmed_at", sa.DateTime(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["recipient_id"], ["recipients.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_zones_recipient_id", "zones", ["recipient_id"], unique=False)


def downgrade() -> None:
    for table in ("zones", "delivery_events", "recipients", "fleet_items", "energy_flights", "deliveries",
                  "airspace_versions"):
        op.drop_table(table)
