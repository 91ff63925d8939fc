"""The tables added in the session that made groundctl run as a service: 12 new tables, no change
to the tables of revision 0001.

attended_clear_codes, recipient_erasures, restrictions, delivery_confirmations, flight_commands,
flight_leases, notify_preferences, operational_intents, tracking_links, webhook_endpoints,
notify_outbox, notify_zone_marks

Each table is created only if it is missing: databases opened by development builds between the models
and this migration already have some of them (the store created them from the models, saying so).

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _has_table(name: str) -> bool:
    return sa.inspect(op.get_bind()).has_table(name)


def _has_column(table: str, column: str) -> bool:
    return any(c["name"] == column for c in sa.inspect(op.get_bind()).get_columns(table))


def upgrade() -> None:
    if not _has_table('attended_clear_codes'):
        op.create_table('attended_clear_codes',
            sa.Column('delivery_id', sa.Integer(), nullable=False),
            sa.Column('salt', sa.String(length=32), nullable=False),
            sa.Column('code_hash', sa.String(length=64), nullable=False),
            sa.Column('created_at', sa.DateTime(), nullable=False),
            sa.Column('wrong_tries', sa.Integer(), nullable=False),
            sa.Column('used_at', sa.DateTime(), nullable=True),
            sa.PrimaryKeyConstraint('delivery_id')
        )
    if not _has_table('recipient_erasures'):
        op.create_table('recipient_erasures',
            sa.Column('recipient_id', sa.Integer(), nullable=False),
            sa.Column('erased_at', sa.DateTime(), nullable=False),
            sa.Column('requested_by', sa.String(length=20), nullable=False),
            sa.Column('deliveries_kept', sa.Integer(), nullable=False),
            sa.Column('deliveries_cancelled', sa.Integer(), nullable=False),
            sa.PrimaryKeyConstraint('recipient_id')
        )
    if not _has_table('restrictions'):
        op.create_table('restrictions',
            sa.Column('id', sa.Integer(), nullable=False),
            sa.Column('name', sa.String(length=200), nullable=False),
            sa.Column('feature', sa.JSON(), nullable=False),
            sa.Column('start', sa.DateTime(), nullable=False),
            sa.Column('end', sa.DateTime(), nullable=False),
            sa.Column('lifted_at', sa.DateTime(), nullable=True),
            sa.Column('created_at', sa.DateTime(), nullable=False),
            sa.Column('updated_at', sa.DateTime(), nullable=False),
            sa.PrimaryKeyConstraint('id')
        )
        op.create_index(op.f('ix_restrictions_end'), 'restrictions', ['end'], unique=False)
        op.create_index(op.f('ix_restrictions_start'), 'restrictions', ['start'], unique=False)
        op.create_index(op.f('ix_restrictions_updated_at'), 'restrictions', ['updated_at'], unique=False)
    if not _has_table('delivery_confirmations'):
        op.create_table('delivery_confirmations',
            sa.Column('delivery_id', sa.Integer(), nullable=False),
            sa.Column('status', sa.String(length=20), nullable=False),
            sa.Column('message', sa.Text(), nullable=False),
            sa.Column('via', sa.String(length=10), nullable=False),
            sa.Column('created_at', sa.DateTime(), nullable=False),
            sa.Column('resolved_at', sa.DateTime(), nullable=True),
            sa.Column('resolution', sa.String(length=20), nullable=True),
            sa.Column('resolution_note', sa.Text(), nullable=True),
            sa.ForeignKeyConstraint(['delivery_id'], ['deliveries.id'], ondelete='CASCADE'),
            sa.PrimaryKeyConstraint('delivery_id')
        )
        op.create_index(op.f('ix_delivery_confirmations_created_at'), 'delivery_confirmations', ['created_at'], unique=False)
        op.create_index(op.f('ix_delivery_confirmations_resolved_at'), 'delivery_confirmations', ['resolved_at'], unique=False)
        op.create_index(op.f('ix_delivery_confirmations_status'), 'delivery_confirmations', ['status'], unique=False)
    if not _has_table('flight_commands'):
        op.create_table('flight_commands',
            sa.Column('id', sa.Integer(), nullable=False),
            sa.Column('delivery_id', sa.Integer(), nullable=False),
            sa.Column('kind', sa.String(length=30), nullable=False),
            sa.Column('data', sa.JSON(), nullable=False),
            sa.Column('created_at', sa.DateTime(), nullable=False),
            sa.Column('expires_at', sa.DateTime(), nullable=True),
            sa.Column('done_at', sa.DateTime(), nullable=True),
            sa.Column('done_by', sa.String(length=200), nullable=True),
            sa.Column('result', sa.JSON(), nullable=True),
            sa.ForeignKeyConstraint(['delivery_id'], ['deliveries.id'], ondelete='CASCADE'),
            sa.PrimaryKeyConstraint('id')
        )
        op.create_index(op.f('ix_flight_commands_delivery_id'), 'flight_commands', ['delivery_id'], unique=False)
        op.create_index(op.f('ix_flight_commands_done_at'), 'flight_commands', ['done_at'], unique=False)
    if not _has_table('flight_leases'):
        op.create_table('flight_leases',
            sa.Column('delivery_id', sa.Integer(), nullable=False),
            sa.Column('owner', sa.String(length=200), nullable=True),
            sa.Column('generation', sa.Integer(), nullable=False),
            sa.Column('claimed_at', sa.DateTime(), nullable=True),
            sa.Column('heartbeat_at', sa.DateTime(), nullable=True),
            sa.Column('expires_at', sa.DateTime(), nullable=False),
            sa.Column('done_at', sa.DateTime(), nullable=True),
            sa.Column('previous_owner', sa.String(length=200), nullable=True),
            sa.Column('previous_expired_at', sa.DateTime(), nullable=True),
            sa.ForeignKeyConstraint(['delivery_id'], ['deliveries.id'], ondelete='CASCADE'),
            sa.PrimaryKeyConstraint('delivery_id')
        )
        op.create_index(op.f('ix_flight_leases_expires_at'), 'flight_leases', ['expires_at'], unique=False)
    if not _has_table('notify_preferences'):
        op.create_table('notify_preferences',
            sa.Column('recipient_id', sa.Integer(), nullable=False),
            sa.Column('kinds', sa.JSON(), nullable=True),
            sa.Column('email_enabled', sa.Boolean(), nullable=False),
            sa.Column('email', sa.String(length=254), nullable=True),
            sa.Column('updated_at', sa.DateTime(), nullable=False),
            sa.ForeignKeyConstraint(['recipient_id'], ['recipients.id'], ondelete='CASCADE'),
            sa.PrimaryKeyConstraint('recipient_id')
        )
    if not _has_table('operational_intents'):
        op.create_table('operational_intents',
            sa.Column('delivery_id', sa.Integer(), nullable=False),
            sa.Column('state', sa.String(length=20), nullable=False),
            sa.Column('departure', sa.Float(), nullable=False),
            sa.Column('time_end', sa.Float(), nullable=False),
            sa.Column('cruise_alt_m', sa.Float(), nullable=False),
            sa.Column('data', sa.JSON(), nullable=False),
            sa.Column('updated_at', sa.DateTime(), nullable=False),
            sa.ForeignKeyConstraint(['delivery_id'], ['deliveries.id'], ),
            sa.PrimaryKeyConstraint('delivery_id')
        )
        op.create_index(op.f('ix_operational_intents_state'), 'operational_intents', ['state'], unique=False)
        op.create_index(op.f('ix_operational_intents_time_end'), 'operational_intents', ['time_end'], unique=False)
    if not _has_table('tracking_links'):
        op.create_table('tracking_links',
            sa.Column('delivery_id', sa.Integer(), nullable=False),
            sa.Column('nonce', sa.String(length=64), nullable=False),
            sa.Column('token_hash', sa.String(length=64), nullable=False),
            sa.Column('created_at', sa.DateTime(), nullable=False),
            sa.Column('revoked_at', sa.DateTime(), nullable=True),
            sa.ForeignKeyConstraint(['delivery_id'], ['deliveries.id'], ondelete='CASCADE'),
            sa.PrimaryKeyConstraint('delivery_id')
        )
        op.create_index(op.f('ix_tracking_links_token_hash'), 'tracking_links', ['token_hash'], unique=True)
    if not _has_table('webhook_endpoints'):
        op.create_table('webhook_endpoints',
            sa.Column('id', sa.Integer(), nullable=False),
            sa.Column('recipient_id', sa.Integer(), nullable=True),
            sa.Column('url', sa.String(length=2000), nullable=False),
            sa.Column('secret', sa.String(length=100), nullable=False),
            sa.Column('kinds', sa.JSON(), nullable=True),
            sa.Column('description', sa.String(length=200), nullable=True),
            sa.Column('created_at', sa.DateTime(), nullable=False),
            sa.ForeignKeyConstraint(['recipient_id'], ['recipients.id'], ondelete='CASCADE'),
            sa.PrimaryKeyConstraint('id')
        )
        op.create_index(op.f('ix_webhook_endpoints_recipient_id'), 'webhook_endpoints', ['recipient_id'], unique=False)
    if not _has_table('notify_outbox'):
        op.create_table('notify_outbox',
            sa.Column('id', sa.Integer(), nullable=False),
            sa.Column('msg_id', sa.String(length=64), nullable=False),
            sa.Column('dedupe_key', sa.String(length=200), nullable=False),
            sa.Column('channel', sa.String(length=10), nullable=False),
            sa.Column('endpoint_key', sa.String(length=300), nullable=False),
            sa.Column('endpoint_id', sa.Integer(), nullable=True),
            sa.Column('email_to', sa.String(length=254), nullable=True),
            sa.Column('recipient_id', sa.Integer(), nullable=True),
            sa.Column('delivery_id', sa.Integer(), nullable=True),
            sa.Column('event_id', sa.Integer(), nullable=True),
            sa.Column('kind', sa.String(length=30), nullable=False),
            sa.Column('body', sa.Text(), nullable=False),
            sa.Column('state', sa.String(length=10), nullable=False),
            sa.Column('attempts', sa.Integer(), nullable=False),
            sa.Column('next_attempt_at', sa.DateTime(), nullable=False),
            sa.Column('last_error', sa.Text(), nullable=True),
            sa.Column('last_status', sa.Integer(), nullable=True),
            sa.Column('created_at', sa.DateTime(), nullable=False),
            sa.Column('sent_at', sa.DateTime(), nullable=True),
            sa.Column('dead_at', sa.DateTime(), nullable=True),
            sa.ForeignKeyConstraint(['endpoint_id'], ['webhook_endpoints.id'], ondelete='SET NULL'),
            sa.PrimaryKeyConstraint('id'),
            sa.UniqueConstraint('dedupe_key'),
            sa.UniqueConstraint('msg_id')
        )
        op.create_index(op.f('ix_notify_outbox_delivery_id'), 'notify_outbox', ['delivery_id'], unique=False)
        op.create_index('ix_notify_outbox_due', 'notify_outbox', ['state', 'next_attempt_at'], unique=False)
        op.create_index(op.f('ix_notify_outbox_endpoint_key'), 'notify_outbox', ['endpoint_key'], unique=False)
        op.create_index(op.f('ix_notify_outbox_recipient_id'), 'notify_outbox', ['recipient_id'], unique=False)
    if not _has_table('notify_zone_marks'):
        op.create_table('notify_zone_marks',
            sa.Column('zone_id', sa.Integer(), nullable=False),
            sa.Column('confirmed_at', sa.DateTime(), nullable=False),
            sa.ForeignKeyConstraint(['zone_id'], ['zones.id'], ondelete='CASCADE'),
            sa.PrimaryKeyConstraint('zone_id')
        )


def downgrade() -> None:
    op.drop_table('notify_zone_marks')
    op.drop_table('notify_outbox')
    op.drop_table('webhook_endpoints')
    op.drop_table('tracking_links')
    op.drop_table('operational_intents')
    op.drop_table('notify_preferences')
    op.drop_table('flight_leases')
    op.drop_table('flight_commands')
    op.drop_table('delivery_confirmations')
    op.drop_table('restrictions')
    op.drop_table('recipient_erasures')
    op.drop_table('attended_clear_codes')
