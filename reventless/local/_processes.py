"""The embedded store's record of the processes on it: the engine's lease (one row) and the
attachments of the schedulers' targets."""

from __future__ import annotations

from reventless.local._connection import StoreConnection
from reventless.local._rows import AttachmentRow

__all__ = ("ProcessTables",)

# Attachments kept per scheduler besides the lease holder's: each process run adds one.
_KEEP_ATTACHMENTS = 16


class ProcessTables(StoreConnection):
    """The processes working on the store: the engine's lease and the schedulers' attachments
    (which target and payload types each process bound)."""

    def record_attachment(self, row: AttachmentRow) -> None:
        """Record (or renew) a process's target on a scheduler; forget the oldest others."""
        with self.transaction():
            self.conn.execute(
                "INSERT INTO attachments (scheduler, owner, target, payload_types, process,"
                " attached_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (scheduler, owner) DO UPDATE"
                " SET target = excluded.target, payload_types = excluded.payload_types,"
                " process = excluded.process, attached_at = excluded.attached_at",
                row,
            )
            self.conn.execute(
                "DELETE FROM attachments WHERE scheduler = ?1 AND owner NOT IN"
                " (SELECT owner FROM lease) AND owner NOT IN (SELECT owner FROM attachments"
                " WHERE scheduler = ?1 ORDER BY attached_at DESC LIMIT ?2)",
                (row.scheduler, _KEEP_ATTACHMENTS),
            )

    def attachments(self) -> list[AttachmentRow]:
        """Every recorded attachment, newest first (none in an older file opened read-only)."""
        if not self.has_table("attachments"):
            return []
        rows = self.conn.execute(
            "SELECT scheduler, owner, target, payload_types, process, attached_at"
            " FROM attachments ORDER BY attached_at DESC, rowid DESC"
        ).fetchall()
        return [AttachmentRow._make(row) for row in rows]

    def schedule_counts(self) -> list[tuple[str, int, int]]:
        """(scheduler, schedules, paused schedules) for every scheduler holding schedules."""
        rows = self.conn.execute(
            "SELECT scheduler, count(*), total(paused != 0) FROM schedules GROUP BY scheduler"
        ).fetchall()
        return [(str(name), int(count), int(paused)) for name, count, paused in rows]

    def lease_holder(self) -> tuple[str, float] | None:
        """(owner, expires_at in Unix seconds) of the lease row, if there is one."""
        row = self.conn.execute("SELECT owner, expires_at FROM lease WHERE id = 1").fetchone()
        return None if row is None else (str(row[0]), float(row[1]))

    def lease_renewed_us(self) -> int | None:
        """When the lease was last taken or renewed (None: never, or by a release before it
        recorded this)."""
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'lease_renewed_us'").fetchone()
        return None if row is None else int(row[0])

    def try_lease(self, owner: str, now: float, ttl: float) -> tuple[bool, float]:
        """Take or renew the engine's lease when it is free, expired or already ours: (held,
        when the lease it did not get lapses)."""
        with self.transaction():
            row = self.conn.execute("SELECT owner, expires_at FROM lease WHERE id = 1").fetchone()
            if row is not None and row[0] != owner and row[1] > now:
                return False, float(row[1])
            self.conn.execute(
                "INSERT INTO lease (id, owner, expires_at) VALUES (1, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET owner = excluded.owner,"
                " expires_at = excluded.expires_at",
                (owner, now + ttl),
            )
            # When the holder was last seen alive, for status readers (`reventless schedulers`).
            self.conn.execute(
                "INSERT INTO meta VALUES ('lease_renewed_us', ?) ON CONFLICT (key)"
                " DO UPDATE SET value = excluded.value",
                (int(now * 1_000_000),),
            )
        return True, 0.0

    def release_lease(self, owner: str) -> None:
        with self.transaction():
            self.conn.execute("DELETE FROM lease WHERE id = 1 AND owner = ?", (owner,))
