"""django-q2 brokers that wake on events instead of polling, and run the engine's recovery sweep when idle.

- ``PostgresNotifyBroker``: the ORM broker's table, but the queue row's INSERT carries a ``pg_notify`` in the
  same statement (so it is delivered when the enqueuing transaction commits), and an idle pusher waits on
  ``LISTEN``; claiming is one ``UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED) RETURNING``.
- ``SqliteWakeBroker``: SQLite has no NOTIFY, and lives on one machine: each idle pusher waits on a Unix datagram
  socket in a directory derived from the database path, and an enqueue pokes every socket there after its commit.
  A one-second fallback poll stays (a few cheap queries a second at most when idle).
- ``RedisBroker``: django-q2's Redis broker already waits in a blocking pop; this adds the idle sweep.

Every broker runs ``tasks.recovery.sweep`` at most every ``GENESIS_SWEEP_SECONDS`` while idle, so a lost lease is
noticed within seconds; the django-q2 schedule ``genesis-sweep`` is the once-a-minute backstop.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import psycopg
from django.conf import settings
from django.db import connections, transaction
from django.utils import timezone
from django_q.brokers.orm import ORM
from django_q.brokers.redis_broker import Redis
from django_q.conf import Conf
from django_q.models import OrmQ

from tasks.recovery import sweep

logger = logging.getLogger("genesis.broker")
CHANNEL = "genesis_q"
IDLE_WAIT = 1.0


class _IdleSweep:
    _last_sweep = 0.0

    def _sweep_if_due(self) -> None:
        every = float(settings.GENESIS_SWEEP_SECONDS)
        if every <= 0 or time.monotonic() - self._last_sweep < every:
            return
        self._last_sweep = time.monotonic()
        try:
            counts = sweep()
            if any(counts.values()):
                logger.info("sweep: %s", counts)
        except Exception:
            logger.exception("the idle sweep failed")
            connections[Conf.ORM].close()

    def _wait_time(self) -> float:
        every = float(settings.GENESIS_SWEEP_SECONDS)
        left = every - (time.monotonic() - self._last_sweep) if every > 0 else IDLE_WAIT
        return max(0.01, min(IDLE_WAIT, left))


class _ClaimingORM(_IdleSweep, ORM):
    """Shared by the two ORM brokers: claim up to BULK rows without closing the connection on every call."""

    def _db(self):
        return connections[Conf.ORM]

    def _lock_until(self):
        return timezone.now() + timedelta(seconds=Conf.RETRY)

    def _claim(self) -> list[tuple[int, str]]:
        now = timezone.now()
        rows = []
        for task in OrmQ.objects.using(Conf.ORM).filter(key=self.list_key, lock__lt=now)[: Conf.BULK]:
            if OrmQ.objects.using(Conf.ORM).filter(id=task.id, lock=task.lock).update(lock=self._lock_until()):
                rows.append((task.pk, task.payload))
        return rows

    def _safely(self, fn):
        try:
            return fn()
        except Exception:
            logger.exception("broker database call failed; reconnecting")
            self._db().close()
            time.sleep(0.5)
            return None


class PostgresNotifyBroker(_ClaimingORM):
    _listener = None

    def enqueue(self, task) -> int:
        table = OrmQ._meta.db_table
        key = self.list_key or Conf.CLUSTER_NAME
        with self._db().cursor() as cursor:
            cursor.execute(
                f"WITH ins AS (INSERT INTO {table} (key, payload, lock) VALUES (%s, %s, %s) RETURNING id) "  # noqa: S608
                "SELECT id, pg_notify(%s, %s) FROM ins",
                [key, task, timezone.now(), CHANNEL, key],
            )
            return cursor.fetchone()[0]

    def _claim(self) -> list[tuple[int, str]]:
        table = OrmQ._meta.db_table
        with self._db().cursor() as cursor:
            cursor.execute(
                f"UPDATE {table} SET lock = %s WHERE id IN (SELECT id FROM {table} WHERE key = %s AND lock < %s "  # noqa: S608
                "ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED) RETURNING id, payload",
                [self._lock_until(), self.list_key, timezone.now(), Conf.BULK],
            )
            return [(row[0], row[1]) for row in cursor.fetchall()]

    def _listen(self):
        if self._listener is None or self._listener.closed:
            params = self._db().settings_dict
            self._listener = psycopg.connect(
                dbname=params["NAME"], user=params.get("USER") or None, password=params.get("PASSWORD") or None,
                host=params.get("HOST") or None, port=params.get("PORT") or None, autocommit=True,
            )
            self._listener.execute(f"LISTEN {CHANNEL}")
        return self._listener

    def dequeue(self):
        try:
            listener = self._listen()
            rows = self._claim()
            if rows:
                return rows
            for _ in listener.notifies(timeout=self._wait_time(), stop_after=1):
                return self._claim() or None
        except Exception:
            logger.exception("waiting for work failed; reconnecting")
            self._db().close()
            if self._listener is not None:
                self._listener.close()
            self._listener = None
            time.sleep(0.5)
            return None
        self._sweep_if_due()
        return None


def wake_dir() -> Path:
    """Where the idle pushers serving this SQLite database wait (one socket each)."""
    name = str(connections[Conf.ORM].settings_dict["NAME"])
    digest = hashlib.sha256(os.path.abspath(name).encode()).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / f"genesis-wake-{digest}"
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def wake_pushers() -> None:
    directory = wake_dir()
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
        sender.setblocking(False)
        for path in directory.glob("*.sock"):
            try:
                sender.sendto(b"1", str(path))
            except (ConnectionRefusedError, FileNotFoundError):
                path.unlink(missing_ok=True)  # its pusher is gone
            except BlockingIOError:
                pass  # already has wake-ups waiting


class SqliteWakeBroker(_ClaimingORM):
    _socket = None

    def enqueue(self, task) -> int:
        package = OrmQ.objects.using(Conf.ORM).create(key=self.list_key or Conf.CLUSTER_NAME, payload=task,
                                                        lock=timezone.now())
        transaction.on_commit(wake_pushers, using=Conf.ORM)
        return package.pk

    def _wake_socket(self):
        if self._socket is None:
            path = wake_dir() / f"{os.getpid()}.sock"
            path.unlink(missing_ok=True)
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._socket.bind(str(path))
        return self._socket

    def dequeue(self):
        try:
            wake = self._wake_socket()
            rows = self._claim()
            if rows:
                return rows
            wake.settimeout(self._wait_time())
            try:
                wake.recv(64)
                wake.setblocking(False)
                try:  # drain the other wake-ups that arrived with it
                    while wake.recv(64):
                        pass
                except BlockingIOError:
                    pass
                return self._claim() or None
            except TimeoutError:
                pass
        except Exception:
            logger.exception("waiting for work failed")
            self._db().close()
            time.sleep(0.5)
            return None
        self._sweep_if_due()
        return None


class RedisBroker(_IdleSweep, Redis):
    def dequeue(self):
        task = self.connection.blpop(self.list_key, self._wait_time())
        if task:
            return [(None, task[1])]
        self._sweep_if_due()
        return None
