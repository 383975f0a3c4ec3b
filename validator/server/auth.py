"""Users, password hashes and API session tokens.

The users file has one user per line, ``NAME:HASH``; blank lines and lines
starting with ``#`` are ignored.  ``HASH`` is written by
``validator serve --hash-password NAME`` and has the form
``scrypt$N$r$p$SALT$DIGEST`` (``hashlib.scrypt``, salt and digest in
URL-safe base64 without padding).  ``pbkdf2_sha256$ITERATIONS$SALT$DIGEST``
is accepted as well.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

SCRYPT_N, SCRYPT_R, SCRYPT_P = 1 << 14, 8, 1
_USER = re.compile(r"^[A-Za-z0-9@._-]{1,128}$")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    """A new ``scrypt$…`` hash of ``password`` with a random salt."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=32)
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, encoded: str) -> bool:
    """Whether ``password`` matches ``encoded`` (constant-time compare; bad hashes never match)."""
    parts = encoded.split("$")
    try:
        if parts[0] == "scrypt" and len(parts) == 6:
            n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
            if n > 1 << 20 or r > 32 or p > 16:
                return False
            salt, expected = _unb64(parts[4]), _unb64(parts[5])
            actual = hashlib.scrypt(
                password.encode("utf-8"),
                salt=salt,
                n=n,
                r=r,
                p=p,
                dklen=len(expected),
                maxmem=256 * 1024 * 1024,
            )
        elif parts[0] == "pbkdf2_sha256" and len(parts) == 4:
            iterations = int(parts[1])
            if iterations > 10_000_000:
                return False
            salt, expected = _unb64(parts[2]), _unb64(parts[3])
            actual = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
        else:
            return False
    except (ValueError, OverflowError, MemoryError):
        return False
    return hmac.compare_digest(actual, expected)


def valid_user_name(name: str) -> bool:
    return bool(_USER.match(name))


@dataclass
class Users:
    """The users of a server, read from a users file."""

    hashes: dict[str, str]

    @classmethod
    def load(cls, path: Path) -> Users:
        hashes: dict[str, str] = {}
        for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            name, sep, encoded = line.partition(":")
            if not sep or not valid_user_name(name) or "$" not in encoded:
                raise ValueError(f"{path}:{number}: expected NAME:HASH")
            hashes[name] = encoded.strip()
        return cls(hashes)

    def check(self, name: str, password: str) -> bool:
        encoded = self.hashes.get(name)
        if encoded is None:
            # Spend the same time as for a known user, so names cannot be probed.
            verify_password(password, _DUMMY)
            return False
        return verify_password(password, encoded)


_DUMMY = "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"


def create_default_users(path: Path, user: str = "admin") -> str:
    """Write a users file with one user and a random password; return the password."""
    password = secrets.token_urlsafe(12)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("# validator serve users file: NAME:HASH (validator serve --hash-password NAME)\n")
        fh.write(f"{user}:{hash_password(password)}\n")
    return password


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_key(token: str) -> str:
    """What the database stores for a token (its SHA-256), so a copy of it logs no one in."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass
class LoginThrottle:
    """Failed logins per client address and per user name, over a sliding window.

    A client with ``per_client`` failures in the last ``window`` seconds is refused
    before any password is hashed, whatever user it names; a user name with
    ``per_user`` failures is refused to every client that has failed itself in the
    window (a client that has not failed still gets its attempt, so guessing one
    user's password from many addresses is slowed without locking the user out).
    Kept in memory per server process; at most ``max_keys`` addresses and names
    are tracked (the oldest are dropped first).
    """

    per_client: int = 10
    per_user: int = 20
    window: float = 60.0
    max_keys: int = 10_000
    _clients: dict[str, deque[float]] = field(default_factory=dict)
    _users: dict[str, deque[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _recent(self, table: dict[str, deque[float]], key: str, now: float) -> deque[float]:
        times = table.get(key)
        if times is None:
            return deque()
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del table[key]
        return times

    def retry_after(self, client: str, user: str, now: float | None = None) -> float:
        """Seconds until ``client`` may try ``user`` again (0: now)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            by_client = self._recent(self._clients, client, now)
            if len(by_client) >= self.per_client:
                return by_client[-self.per_client] + self.window - now
            by_user = self._recent(self._users, user, now)
            if by_client and len(by_user) >= self.per_user:
                return by_user[-self.per_user] + self.window - now
        return 0.0

    def failed(self, client: str, user: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            for table, key in ((self._clients, client), (self._users, user)):
                times = table.pop(key, None) or deque()
                times.append(now)
                while len(times) > max(self.per_client, self.per_user):
                    times.popleft()
                table[key] = times  # re-inserted last: dicts keep insertion order
                while len(table) > self.max_keys:
                    del table[next(iter(table))]
