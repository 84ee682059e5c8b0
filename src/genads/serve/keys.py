"""API keys in the ledger: issue, look up (constant time), list, revoke, rotate; and the ledger's error type.

Only a key's SHA-256 is stored. Its first 16 hex digits are the key's public id (``key_id``):
what listings show and revocation names. A lookup fetches the live keys with that id and compares
the full hashes with :func:`hmac.compare_digest`. A revoked key stays in the table with its
``revoked_at`` (it can never be registered again); rotation issues a new key for the same
principal and revokes the old one in one transaction. The admin key the server starts with is
the only live admin key (:meth:`KeyStore.install_admin_key`), so replacing ``admin.key`` and
restarting voids the old one.

A publisher (placement) key belongs to neither an advertiser nor the admin: it names a publisher
(``publisher``, the site or app that shows the ads) and opens only ``/v1/ads`` and ``/v1/events``.

Ad requests and events check their key through :meth:`KeyStore.principal_cached`: a live key found in the last
``KEY_CACHE_S`` (1 s) is not looked up again (no ledger read per request). A revocation or rotation through this
ledger object (this server's API) clears the cache at once; one made elsewhere (the CLI, another worker on
PostgreSQL) takes effect within ``KEY_CACHE_S``, as a token secret's rotation does. Unknown and revoked keys are
never cached: a newly issued key works at once.

:class:`KeyStore` is a mixin of :class:`~genads.serve.ledger.SQLLedger` (it uses its ``_tx`` and
``_run``).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from typing import NamedTuple

MAX_KEY_CHARS = 256
KEY_CACHE_S = 1.0
"""How long a live key found by :meth:`KeyStore.principal_cached` is trusted without another lookup."""
KEY_CACHE_MAX = 4096
"""Cached keys at most (the cache starts over when full)."""
_clock = time.monotonic
"""The cache's clock (tests move it)."""
PUBLISHER_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
"""Longer X-API-Key values are refused without a lookup."""


class LedgerError(ValueError):
    """A request the ledger refuses; ``field`` names the offending input."""

    def __init__(self, field: str, message: str, status: int = 422) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message, self.status = field, message, status


class Principal(NamedTuple):
    is_admin: bool
    advertiser_id: int | None
    """None for the admin and for publishers."""
    key_id: str
    publisher: str | None = None
    """A publisher key's publisher (it may ask for ads and report events, nothing else); None otherwise."""


@dataclass(frozen=True)
class KeyInfo:
    key_id: str
    advertiser_id: int | None
    is_admin: bool
    created_at: float | None
    """None for keys issued before key ids existed."""
    revoked_at: float | None
    publisher: str | None = None


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def key_id(key: str) -> str:
    return hash_key(key)[:16]


COLUMNS = "key_id, advertiser_id, is_admin, created_at, revoked_at, publisher"


def _info(row: tuple) -> KeyInfo:
    return KeyInfo(row[0], None if row[1] is None else int(row[1]), bool(row[2]), row[3], row[4], row[5])


def _principal(row: tuple) -> Principal:
    return Principal(bool(row[2]), None if row[1] is None else int(row[1]), row[0], row[5])


class KeyStore:
    def _insert_key(self, cur, advertiser_id: int | None, key: str, publisher: str | None = None) -> None:
        h = hash_key(key)
        admin = int(advertiser_id is None and publisher is None)
        self._run(cur, "INSERT INTO api_keys (key_hash, key_id, advertiser_id, is_admin, created_at, publisher) "
                       "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (key_hash) DO NOTHING",
                  (h, h[:16], advertiser_id, admin, time.time(), publisher))

    def add_key(self, advertiser_id: int | None, key: str | None = None, publisher: str | None = None) -> str:
        """Register an API key (a new random one unless given); ``advertiser_id`` and ``publisher`` None = admin,
        ``publisher`` set: a publisher key (ads and events only). A key that was revoked stays revoked."""
        if advertiser_id is not None and publisher is not None:
            raise LedgerError("publisher", "a key belongs to an advertiser or to a publisher, not both")
        if publisher is not None and not PUBLISHER_NAME.match(publisher):
            raise LedgerError("publisher", f"{publisher!r}: 1-64 letters, digits, '.', '_' or '-'")
        key = key or secrets.token_urlsafe(32)
        with self._tx() as cur:
            self._insert_key(cur, advertiser_id, key, publisher)
        return key

    def _lookup(self, cur, key: str) -> tuple | None:
        if not key or len(key) > MAX_KEY_CHARS:
            return None
        h = hash_key(key)
        rows = self._run(cur, f"SELECT key_hash, {COLUMNS} FROM api_keys WHERE key_id = ?", (h[:16],)).fetchall()
        return next((r[1:] for r in rows if hmac.compare_digest(str(r[0]), h)), None)

    def principal(self, key: str) -> Principal | None:
        """(is_admin, advertiser_id, key_id) of a live key, else None (unknown, revoked or over-long)."""
        with self._tx(write=False) as cur:
            row = self._lookup(cur, key)
        if row is None or row[4] is not None:
            return None
        return _principal(row)

    def principal_cached(self, key: str, ttl_s: float = KEY_CACHE_S) -> Principal | None:
        """:meth:`principal`, a live key's answer kept ``ttl_s`` seconds (see the module's docstring)."""
        if not key or len(key) > MAX_KEY_CHARS:
            return None
        cache: dict[str, tuple[float, Principal]] = self.__dict__.setdefault("_key_cache", {})
        h, now = hash_key(key), _clock()
        hit = cache.get(h)
        if hit is not None and now < hit[0]:
            return hit[1]
        generation = self.__dict__.get("_key_generation", 0)
        found = self.principal(key)
        # a key change committed meanwhile (generation moved) may postdate what was read: keep nothing then
        if found is not None and self.__dict__.get("_key_generation", 0) == generation:
            if len(cache) >= KEY_CACHE_MAX:
                cache.clear()
            cache[h] = (now + ttl_s, found)
        return found

    def _keys_changed(self) -> None:
        """After a committed revocation or rotation: cached answers are stale."""
        self.__dict__["_key_generation"] = self.__dict__.get("_key_generation", 0) + 1
        self.__dict__.setdefault("_key_cache", {}).clear()

    def principal_by_hash(self, key_hash: str) -> Principal | None:
        """The principal of the live key with this SHA-256 (the console keeps the hash of a session's key,
        never the key); None once it is revoked."""
        with self._tx(write=False) as cur:
            row = self._run(cur, f"SELECT {COLUMNS} FROM api_keys WHERE key_hash = ?", (key_hash,)).fetchone()
        if row is None or row[4] is not None:
            return None
        return _principal(row)

    def has_admin(self) -> bool:
        with self._tx(write=False) as cur:
            return self._run(cur, "SELECT COUNT(*) FROM api_keys WHERE is_admin = 1 AND revoked_at IS NULL").fetchone()[0] > 0

    def list_keys(self, advertiser_id: int | None = None, publisher: str | None = None) -> list[KeyInfo]:
        """Every key (both None), one advertiser's or one publisher's, live and revoked, oldest first."""
        where, params = ("", ())
        if advertiser_id is not None:
            where, params = "WHERE advertiser_id = ? AND is_admin = 0", (advertiser_id,)
        elif publisher is not None:
            where, params = "WHERE publisher = ?", (publisher,)
        with self._tx(write=False) as cur:
            rows = self._run(cur, f"SELECT {COLUMNS} FROM api_keys {where} ORDER BY COALESCE(created_at, 0), key_id", params).fetchall()
        return [_info(r) for r in rows]

    def revoke_key(self, key_id: str, advertiser_id: int | None = None) -> KeyInfo:
        """Revoke a key by id; with ``advertiser_id``, only that advertiser's keys are found (404 otherwise,
        the same answer as for an unknown id). The last live admin key cannot be revoked (409): rotate it."""
        scope, params = ("", (key_id,)) if advertiser_id is None else (" AND advertiser_id = ? AND is_admin = 0",
                                                                       (key_id, advertiser_id))
        with self._tx() as cur:
            rows = self._run(cur, f"SELECT {COLUMNS} FROM api_keys WHERE key_id = ?{scope}", params).fetchall()
            if not rows:
                raise LedgerError("key_id", f"no key {key_id}", status=404)
            if any(r[2] and r[4] is None for r in rows) and self._run(
                    cur, "SELECT COUNT(*) FROM api_keys WHERE is_admin = 1 AND revoked_at IS NULL AND key_id <> ?",
                    (key_id,)).fetchone()[0] == 0:
                raise LedgerError("key_id", "the last admin key cannot be revoked: rotate it instead", status=409)
            self._run(cur, f"UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL{scope}",
                      (time.time(), *params))
            info = _info(self._run(cur, f"SELECT {COLUMNS} FROM api_keys WHERE key_id = ?{scope}", params).fetchone())
        self._keys_changed()
        return info

    def rotate_key(self, key: str) -> str:
        """A new key for the same principal as the live ``key``, which is revoked (one transaction)."""
        new = secrets.token_urlsafe(32)
        with self._tx() as cur:
            row = self._lookup(cur, key)
            if row is None or row[4] is not None:
                raise LedgerError("X-API-Key", "unknown API key", status=401)
            self._insert_key(cur, None if row[1] is None else int(row[1]), new, row[5])
            self._run(cur, "UPDATE api_keys SET revoked_at = ? WHERE key_hash = ?", (time.time(), hash_key(key)))
        self._keys_changed()
        return new

    def rotate_key_id(self, key_id: str) -> tuple[int | str, str]:
        """By id (the CLI, which does not hold the key): a new key for the advertiser (or publisher) of the live
        key ``key_id``, which is revoked; (advertiser_id or publisher, new key). Admin keys are rotated with
        :meth:`install_admin_key`."""
        new = secrets.token_urlsafe(32)
        with self._tx() as cur:
            rows = self._run(cur, f"SELECT {COLUMNS} FROM api_keys WHERE key_id = ? AND revoked_at IS NULL",
                             (key_id,)).fetchall()
            if len(rows) != 1:
                raise LedgerError("key_id", f"no live key {key_id}", status=404)
            if rows[0][2]:
                raise LedgerError("key_id", "an admin key: rotate it with genads keys rotate-admin", status=409)
            advertiser, publisher = (None if rows[0][1] is None else int(rows[0][1])), rows[0][5]
            self._insert_key(cur, advertiser, new, publisher)
            self._run(cur, "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL", (time.time(), key_id))
        self._keys_changed()
        return (publisher if advertiser is None else advertiser), new

    def install_admin_key(self, key: str) -> None:
        """Make ``key`` the one live admin key: register it and revoke every other admin key.
        A key that was revoked is refused (LedgerError, field admin_key): a replaced key never comes back."""
        with self._tx() as cur:
            row = self._lookup(cur, key)
            if row is not None and (row[4] is not None or not row[2]):
                raise LedgerError("admin_key", "this key was revoked or belongs to an advertiser: "
                                               "write a new one (genads keys rotate-admin)", status=409)
            self._insert_key(cur, None, key)
            self._run(cur, "UPDATE api_keys SET revoked_at = ? WHERE is_admin = 1 AND revoked_at IS NULL AND key_hash <> ?",
                      (time.time(), hash_key(key)))
        self._keys_changed()
