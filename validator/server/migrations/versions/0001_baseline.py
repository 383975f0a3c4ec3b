"""The first schema: what ``validator serve`` created before migrations were versioned.

A SQLite database made then (no ``alembic_version`` table) is stamped with this
revision at start, then upgraded.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ACTIVE = sa.text("state = 'ACTIVE'")


def upgrade() -> None:
    op.create_table(
        "libraries",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("owner", sa.Text, nullable=False),
        sa.Column("client_token", sa.Text),
        sa.Column("created", sa.Float, nullable=False),
    )
    op.create_table(
        "items",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("library_id", sa.Text, sa.ForeignKey("libraries.id"), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("owner", sa.Text, nullable=False),
        sa.Column("client_token", sa.Text),
        sa.Column("content_version", sa.Integer, nullable=False, server_default="1"),
        sa.Column("content_dir", sa.Text),
        sa.Column("created", sa.Float, nullable=False),
        sa.Column("modified", sa.Float, nullable=False),
    )
    op.create_table(
        "item_files",
        sa.Column("item_id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.Text, nullable=False),
    )
    op.create_table(
        "sessions",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("owner", sa.Text, nullable=False),
        sa.Column("item_id", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("client_token", sa.Text),
        sa.Column("client_progress", sa.Integer, nullable=False, server_default="0"),
        sa.Column("base_version", sa.Integer, nullable=False),
        sa.Column("expiration", sa.Float, nullable=False),
        sa.Column("error_message", sa.Text),
        sa.Column("warning_behavior", sa.Text, nullable=False, server_default="[]"),
        sa.Column("preview_info", sa.Text),
        sa.Column("created", sa.Float, nullable=False),
    )
    op.create_index(
        "one_active_session",
        "sessions",
        ["item_id"],
        unique=True,
        sqlite_where=ACTIVE,
        postgresql_where=ACTIVE,
    )
    op.create_index("session_token", "sessions", ["owner", "client_token"], unique=True)
    op.create_table(
        "session_files",
        sa.Column("session_id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("source_type", sa.Text, nullable=False),
        sa.Column("size", sa.BigInteger),
        sa.Column("checksum_alg", sa.Text),
        sa.Column("checksum", sa.Text),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("bytes_transferred", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("received_size", sa.BigInteger),
        sa.Column("sha256", sa.Text),
        sa.Column("error_message", sa.Text),
        sa.Column("upload_token", sa.Text, nullable=False, unique=True),
        sa.Column("keep_in_storage", sa.Integer, nullable=False),
    )
    op.create_table(
        "tokens",
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("user", sa.Text, nullable=False),
        sa.Column("created", sa.Float, nullable=False),
        sa.Column("last", sa.Float, nullable=False),
    )
