"""What a reproduction reads from the store beyond trials and snapshots: the settings a
snapshot was scored with."""

from __future__ import annotations

from sqlalchemy import inspect
from sqlalchemy.orm import Session

from optarena.leaderboard.snapshot_models import SnapshotRow
from optarena.leaderboard.store import Store
from optarena.scoring.report import Settings


def snapshot_settings(store: Store, snapshot_id: int) -> Settings:
    """The bootstrap settings snapshot ``snapshot_id`` was scored with."""
    if not inspect(store.engine).has_table(SnapshotRow.__tablename__):
        raise LookupError(f"no score snapshot in {store.url} yet")
    with Session(store.engine) as session:
        row = session.get(SnapshotRow, snapshot_id)
        if row is None:
            raise LookupError(f"no score snapshot {snapshot_id} in {store.url}")
        return Settings(
            replicates=row.bootstrap_replicates, seed=row.bootstrap_seed, level=row.interval_level
        )
