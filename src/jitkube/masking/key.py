"""The installation's masking key (HMAC key for placeholders), kept in a 0600 file.

An edge, not core: the runner calls `load_or_create_key(state_dir / "mask.key")` once
per run and passes the bytes to `plan.stdout_masker(key)`. With the key, a placeholder
digest is HMAC-SHA256: equal values still match within this installation, but whoever
sees only the output cannot test guesses (a plain SHA-256 prefix of "admin" or a
6-digit PIN falls to a dictionary at once). A process of the same OS user can read the
file, as it can the session: see the threat model in DESIGN.md.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

KEY_BYTES = 32


def load_or_create_key(path: Path) -> bytes:
    """Read the key at `path`, creating it (0600, 32 random bytes) when missing."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = secrets.token_bytes(KEY_BYTES)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another jitkube process won the race: use its key
            data = path.read_bytes()
        else:
            with os.fdopen(fd, "wb") as f:
                f.write(key)
            return key
    if len(data) < 16:
        raise ValueError(f"masking key {path} is too short ({len(data)} bytes)")
    return data
