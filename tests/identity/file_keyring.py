"""A keyring backend for tests: a JSON file named by $JITKUBE_TEST_KEYRING_FILE.

Selected in subprocesses with PYTHON_KEYRING_BACKEND=file_keyring.FileKeyring (this
directory on PYTHONPATH). It stands in for a real OS keyring so tests can check what
jitkube writes there; it is not keyrings.alt, whose plaintext backends jitkube refuses.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from keyring.backend import KeyringBackend
from keyring.errors import PasswordDeleteError


class FileKeyring(KeyringBackend):
    priority = 1.0  # type: ignore[assignment]

    @property
    def _path(self) -> Path:
        return Path(os.environ["JITKUBE_TEST_KEYRING_FILE"])

    def _read(self) -> dict[str, str]:
        try:
            return dict(json.loads(self._path.read_text()))
        except FileNotFoundError:
            return {}

    def _write(self, data: dict[str, str]) -> None:
        self._path.write_text(json.dumps(data))

    def get_password(self, service: str, username: str) -> str | None:
        return self._read().get(f"{service}/{username}")

    def set_password(self, service: str, username: str, password: str) -> None:
        data = self._read()
        data[f"{service}/{username}"] = password
        self._write(data)

    def delete_password(self, service: str, username: str) -> None:
        data = self._read()
        if data.pop(f"{service}/{username}", None) is None:
            raise PasswordDeleteError(username)
        self._write(data)
