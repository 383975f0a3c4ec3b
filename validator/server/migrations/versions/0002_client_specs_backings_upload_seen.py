"""Client tokens bound to their create spec, storage backings, upload liveness.

- ``libraries.client_spec``, ``items.client_spec``, ``sessions.client_spec``: the create
  spec a client token was first used with (JSON); the same token with another spec is
  refused. Rows made before have none and keep answering their token.
- ``libraries.storage_backings``: kept as given at create (JSON list).
- ``session_files.seen``: when an upload in progress last received bytes. Several
  servers share the database: a server that starts (or sweeps) ends only the uploads
  nobody has fed for longer than the upload idle timeout, not those of a live server.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("libraries", "items", "sessions"):
        op.add_column(table, sa.Column("client_spec", sa.Text))
    op.add_column(
        "libraries",
        sa.Column("storage_backings", sa.Text, nullable=False, server_default="[]"),
    )
    op.add_column("session_files", sa.Column("seen", sa.Float))
