"""Where the refresh token (msal's serialized cache) lives: keyring, a 0600 file, or memory.

Like kubelogin's `keyring | disk | none`, chosen by `token_store` and reported by
`jitkube whoami`. A keyring backend that is not really a keyring (the `fail` and
`null` backends, or `keyrings.alt`'s unencrypted files) is refused, never used as a
silent fallback. `locked()` serialises read -> refresh -> write across processes:
providers rotate refresh tokens and revoke the whole grant when an old one is reused.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from jitkube.errors import ConfigError, JitkubeError

KEYRING_SERVICE = "jitkube"
KEYRING_USER = "msal-token-cache"
# Windows Credential Manager caps an entry near 2.5 KB; one msal account is ~3.2 KB.
KEYRING_CHUNK = 2000
CACHE_FILE = "token-cache.json"
LOCK_FILE = "token.lock"
LOCK_TIMEOUT = 60.0


class TokenStore(Protocol):
    """Keeps one opaque secret blob (msal's serialized cache)."""

    name: str

    def load(self) -> str | None: ...

    def save(self, blob: str) -> None: ...

    def clear(self) -> None: ...


@dataclass
class MemoryStore:
    """Lives and dies with this process."""

    name: str = "memory"
    blob: str | None = None

    def load(self) -> str | None:
        return self.blob

    def save(self, blob: str) -> None:
        self.blob = blob

    def clear(self) -> None:
        self.blob = None


def ensure_private_dir(path: Path) -> Path:
    """Create `path` (0700) if missing; refuse one that others can write to."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = path.stat()
    if st.st_uid != os.getuid() or st.st_mode & 0o022:
        raise ConfigError(f"state directory {path} is writable by others; fix its permissions")
    return path


@dataclass
class FileStore:
    """A 0600 file in the state directory, replaced atomically."""

    directory: Path
    name: str = "file"

    @property
    def path(self) -> Path:
        return self.directory / CACHE_FILE

    def load(self) -> str | None:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            return None
        with os.fdopen(fd, "r", encoding="utf-8") as fh:
            if os.fstat(fh.fileno()).st_mode & 0o077:
                raise ConfigError(
                    f"token file {self.path} is readable by others; run jitkube logout"
                )
            return fh.read()

    def save(self, blob: str) -> None:
        ensure_private_dir(self.directory)
        tmp = self.directory / f".{CACHE_FILE}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(blob)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise

    def clear(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def insecure_backend_reason(backend: Any) -> str | None:
    """Why a keyring backend must not hold tokens, or None when it is a real keyring."""
    from keyring.backends.chainer import ChainerBackend

    if isinstance(backend, ChainerBackend):
        # The chain writes to the first backend that accepts: refuse if any is unsafe.
        parts = list(backend.backends)
        if not parts:
            return "no keyring backend is available"
        reasons = [r for b in parts if (r := insecure_backend_reason(b))]
        return reasons[0] if reasons else None
    module = type(backend).__module__
    name = f"{module}.{type(backend).__name__}"
    if module == "keyring.backends.fail":
        return "no keyring backend is available"
    if module == "keyring.backends.null":
        return f"keyring backend {name} discards secrets"
    if module.startswith("keyrings.alt") or "plaintext" in name.lower():
        return f"keyring backend {name} stores secrets unencrypted"
    return None


@dataclass
class KeyringStore:
    """The OS keyring through `keyring` (imported lazily: ~80 ms and backend discovery)."""

    name: str = "keyring"
    _backend: Any = field(default=None, repr=False)

    def backend(self) -> Any:
        if self._backend is None:
            import keyring

            backend = keyring.get_keyring()
            reason = insecure_backend_reason(backend)
            if reason is not None:
                raise ConfigError(
                    f"token_store is keyring but {reason}",
                    hint='set token_store = "file" (a 0600 file) or "memory" in config.toml, '
                    "or JITKUBE_TOKEN_STORE",
                )
            self._backend = backend
        return self._backend

    def _get(self, user: str) -> str | None:
        value: str | None = self._call(
            "read", lambda: self.backend().get_password(KEYRING_SERVICE, user)
        )
        return value

    def _call(self, what: str, fn: Any) -> Any:
        try:
            return fn()
        except JitkubeError:
            raise
        except Exception as exc:  # keyring.errors.* and D-Bus errors alike
            raise ConfigError(
                f"the keyring refused to {what} the token cache ({type(exc).__name__})"
            ) from None

    def load(self) -> str | None:
        head = self._get(KEYRING_USER)
        if head is None:
            return None
        if not head.startswith("chunks:"):
            return head
        count = int(head.partition(":")[2])
        pieces = [self._get(f"{KEYRING_USER}.{i}") for i in range(count)]
        if any(p is None for p in pieces):
            return None  # torn write by another tool: treat as logged out
        return "".join(p for p in pieces if p is not None)

    def save(self, blob: str) -> None:
        backend = self.backend()
        old = self._get(KEYRING_USER)
        pieces = [blob[i : i + KEYRING_CHUNK] for i in range(0, len(blob), KEYRING_CHUNK)]
        for i, piece in enumerate(pieces):
            self._call(
                "write",
                lambda i=i, piece=piece: backend.set_password(
                    KEYRING_SERVICE, f"{KEYRING_USER}.{i}", piece
                ),
            )
        self._call(
            "write",
            lambda: backend.set_password(KEYRING_SERVICE, KEYRING_USER, f"chunks:{len(pieces)}"),
        )
        if old and old.startswith("chunks:"):
            self._delete_chunks(range(len(pieces), int(old.partition(":")[2])))

    def _delete_chunks(self, indexes: range) -> None:
        for i in indexes:
            self._delete(f"{KEYRING_USER}.{i}")

    def _delete(self, user: str) -> None:
        try:
            self.backend().delete_password(KEYRING_SERVICE, user)
        except JitkubeError:
            raise
        except Exception:  # PasswordDeleteError when absent: fine
            return

    def clear(self) -> None:
        head = self._get(KEYRING_USER)
        if head is not None and head.startswith("chunks:"):
            self._delete_chunks(range(int(head.partition(":")[2])))
        self._delete(KEYRING_USER)


def open_store(kind: str, directory: Path) -> TokenStore:
    """The store named by `token_store` (keyring | file | memory)."""
    if kind == "keyring":
        return KeyringStore()
    if kind == "file":
        return FileStore(directory)
    if kind == "memory":
        return MemoryStore()
    raise ConfigError(f"unknown token_store {kind!r}")


@contextlib.contextmanager
def locked(directory: Path, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
    """Hold an exclusive cross-process lock (flock on `directory/token.lock`).

    Waits up to `timeout` seconds; the kernel drops the lock if the process dies.
    """
    ensure_private_dir(directory)
    fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    raise JitkubeError(
                        f"another jitkube process holds {directory / LOCK_FILE} for too long"
                    ) from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # closing releases the flock
