"""The SASL users of ``fslog serve``: salted SCRAM credentials, never passwords.

Layout::

    ROOT/serve/users.json   the users, mode 0600, replaced atomically (temp file with
                            mode 0600, fsync, rename, fsync of the directory)
    ROOT/serve/users.lock   flock held while ``fslog serve users add/remove`` rewrites it

``users.json`` (one JSON document)::

    {"version": 1,
     "users": {
       "alice": {
         "SCRAM-SHA-256": {"salt": "<base64>", "iterations": 4096,
                           "stored_key": "<base64>", "server_key": "<base64>"},
         "SCRAM-SHA-512": {"salt": "<base64>", "iterations": 4096,
                           "stored_key": "<base64>", "server_key": "<base64>"}}}}

Each entry is what RFC 5802 (and Kafka's SCRAM credential store) keeps: a random salt,
the PBKDF2 iteration count, StoredKey = H(HMAC(SaltedPassword, "Client Key")) and
ServerKey = HMAC(SaltedPassword, "Server Key"). The password itself is not kept and
cannot be recovered from the file; whoever reads the file can still try to guess
passwords offline, hence mode 0600. ``scramp`` computes the entries. PLAIN logins are
checked by deriving StoredKey from the offered password with the entry's salt and
iteration count and comparing in constant time.

Concurrency: any number of readers (a running server reads the file again whenever it
changed, so ``users add``/``remove`` take effect for the next login without a restart);
writers serialize on ``users.lock``. Safe from any thread.
"""

from __future__ import annotations

import base64
import hmac
import json
import os
import re
import stat
import threading

from scramp import ScramMechanism

from ..errors import FslogError, UsageError
from ..storage import files

MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")
ITERATIONS = 4096  # Kafka's minimum and the usual default for SCRAM-SHA-256/512
FORMAT_VERSION = 1
_NAME_RE = re.compile(r"[A-Za-z0-9._@+-]{1,249}\Z")
USERS_MODE = 0o600


class UsersError(FslogError):
    """The users file is unreadable or unsafe, or a user does not exist."""


def validate_user_name(name: str) -> str:
    if not _NAME_RE.match(name or ""):
        raise UsageError(f"user name {name!r}: use 1-249 of A-Z a-z 0-9 . _ @ + -")
    return name


def users_path(root: str) -> str:
    return os.path.join(files.serve_dir(root), files.USERS_FILE)


def scram_entry(password: str, mechanism: str, iterations: int = ITERATIONS,
                salt: bytes | None = None) -> dict:
    """The stored credential of ``password`` for one SCRAM mechanism (a new random salt
    unless one is given)."""
    salt, stored_key, server_key, i = ScramMechanism(mechanism).make_auth_info(
        password, iteration_count=iterations, salt=salt)
    b64 = base64.b64encode
    return {"salt": b64(salt).decode(), "iterations": i,
            "stored_key": b64(stored_key).decode(), "server_key": b64(server_key).decode()}


class UserStore:
    """The users file of one root."""

    def __init__(self, root: str):
        self.root = root
        self.path = users_path(root)
        self._cache: tuple | None = None  # (stat key, users dict)
        self._mutex = threading.Lock()

    # ------------------------------------------------------------ reading
    def _read(self) -> dict:
        """The ``users`` mapping as on disk now ({} when there is no file)."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return {}
        except OSError as e:
            raise UsersError(f"{self.path}: cannot read the SASL users file: "
                             f"{e.strerror or e}") from None
        try:
            st = os.fstat(fd)
            key = (st.st_ino, st.st_mtime_ns, st.st_size)
            with self._mutex:
                if self._cache is not None and self._cache[0] == key:
                    return self._cache[1]
            with os.fdopen(os.dup(fd), "rb") as f:
                raw = f.read()
        finally:
            os.close(fd)
        users = self._parse(raw)
        with self._mutex:
            self._cache = (key, users)
        return users

    def _parse(self, raw: bytes) -> dict:
        fix = "fix it or remove it and add the users again with `fslog serve users add`"
        try:
            doc = json.loads(raw)
        except ValueError as e:
            raise UsersError(f"{self.path}: not JSON ({e}); {fix}") from None
        if not isinstance(doc, dict) or doc.get("version") != FORMAT_VERSION \
                or not isinstance(doc.get("users"), dict):
            raise UsersError(f"{self.path}: not a version {FORMAT_VERSION} users file; {fix}")
        users = doc["users"]
        for name, creds in users.items():
            if not isinstance(creds, dict) or not creds:
                raise UsersError(f"{self.path}: user {name!r} has no credentials; {fix}")
            for mech, entry in creds.items():
                if mech not in MECHANISMS or not isinstance(entry, dict) or not all(
                        k in entry for k in ("salt", "iterations", "stored_key", "server_key")):
                    raise UsersError(f"{self.path}: user {name!r}: bad {mech!r} entry; {fix}")
        return users

    def check_private(self) -> None:
        """Refuse a users file that others than its owner may read or write (the salted
        keys allow offline guessing), or that is a link."""
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            return
        if not stat.S_ISREG(st.st_mode):
            raise UsersError(f"{self.path} is not a regular file: remove it and add the "
                             f"users again with `fslog serve users add`")
        if st.st_mode & 0o077:
            raise UsersError(f"{self.path} has mode {stat.S_IMODE(st.st_mode):04o}: others may "
                             f"read the salted keys; run chmod 600 on it")

    def names(self) -> list[str]:
        return sorted(self._read())

    def list_users(self) -> list[dict]:
        """One dict per user: name, mechanisms, iterations."""
        out = []
        for name, creds in sorted(self._read().items()):
            out.append({"name": name, "mechanisms": sorted(creds),
                        "iterations": max(int(e["iterations"]) for e in creds.values())})
        return out

    def scram_credentials(self, name: str, mechanism: str) -> tuple | None:
        """(salt, stored key, server key, iterations) of a user for a mechanism, as
        ``scramp`` wants them, or None."""
        entry = self._read().get(name, {}).get(mechanism)
        if entry is None:
            return None
        d = base64.b64decode
        return (d(entry["salt"]), d(entry["stored_key"]), d(entry["server_key"]),
                int(entry["iterations"]))

    def verify_password(self, name: str, password: str) -> bool:
        """True if ``password`` is the user's (SASL PLAIN). Costs one PBKDF2 run: call
        it from a worker thread."""
        creds = self._read().get(name)
        if not creds:
            return False
        mech = next(m for m in MECHANISMS if m in creds)
        entry = creds[mech]
        salt = base64.b64decode(entry["salt"])
        got = scram_entry(password, mech, int(entry["iterations"]), salt)
        return hmac.compare_digest(got["stored_key"].encode(), entry["stored_key"].encode())

    # ------------------------------------------------------------ writing
    def _rewrite(self, change) -> object:
        from ..storage.locks import BlockingLock
        files.ensure_dir(files.serve_dir(self.root), self.root)
        with BlockingLock(os.path.join(files.serve_dir(self.root), files.USERS_LOCK_FILE)):
            self.check_private()
            users = dict(self._read())
            result = change(users)
            doc = {"version": FORMAT_VERSION, "users": dict(sorted(users.items()))}
            data = (json.dumps(doc, indent=1) + "\n").encode()
            files.write_atomic(self.path, data, mode=USERS_MODE)
        return result

    def add(self, name: str, password: str, iterations: int = ITERATIONS) -> bool:
        """Add ``name`` or set its password; True if it was new."""
        validate_user_name(name)
        if not password:
            raise UsageError("the password is empty")
        if iterations < ITERATIONS:
            raise UsageError(f"--iterations {iterations}: use at least {ITERATIONS} "
                             f"(Kafka's minimum for SCRAM)")
        creds = {m: scram_entry(password, m, iterations) for m in MECHANISMS}

        def change(users):
            new = name not in users
            users[name] = creds
            return new
        return bool(self._rewrite(change))

    def remove(self, name: str) -> None:
        validate_user_name(name)

        def change(users):
            if name not in users:
                raise UsersError(f"no user {name!r} in {self.path}; "
                                 f"`fslog serve users list` shows them")
            del users[name]
        self._rewrite(change)
