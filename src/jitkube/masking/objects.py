"""The structured rules over parsed JSON: `-v>=8` bodies and `--raw` output."""

from __future__ import annotations

import json
from typing import Any

from jitkube.masking.digest import Digester
from jitkube.masking.patterns import SECRET_NAME, TextMasker, b64_or_raw, is_trivial
from jitkube.masking.structured import LAST_APPLIED, secret_key


class ObjectMasker:
    """The same rules over parsed JSON (for -v>=8 bodies and `--raw` output)."""

    def __init__(self, digester: Digester, text: TextMasker, assume_secret: bool) -> None:
        self.d = digester
        self.text = text
        self.assume_secret = assume_secret
        self.count = 0

    def _ph(self, value: Any, b64: bool = False) -> str:
        self.count += 1
        raw = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        data = raw.encode("utf-8", "surrogateescape")
        return self.d.placeholder(b64_or_raw(data) if b64 else data).decode()

    def _all(self, value: Any, b64: bool) -> Any:
        if isinstance(value, dict):
            return {k: self._all(v, b64) for k, v in value.items()}
        if isinstance(value, list):
            return [self._all(v, b64) for v in value]
        if value is None or isinstance(value, bool):
            return value
        return self._ph(value, b64)

    def mask(self, value: Any, key: str | None = None) -> Any:
        """A masked copy of one decoded JSON value."""
        if isinstance(value, list):
            env = key == "env"
            return [self._env(v) if env and isinstance(v, dict) else self.mask(v) for v in value]
        if isinstance(value, dict):
            kind = value.get("kind")
            out: dict[str, Any] = {}
            for k, v in value.items():
                if k in ("data", "stringData", "binaryData") and (
                    kind == "Secret" or (kind is None and self.assume_secret)
                ):
                    out[k] = self._all(v, k == "data")
                elif k == LAST_APPLIED.decode() or (
                    isinstance(v, str | int | float)
                    and not isinstance(v, bool)
                    and secret_key(k.encode())
                    and not is_trivial(str(v).encode())
                ):
                    out[k] = self._ph(v)
                else:
                    out[k] = self.mask(v, k)
            return out
        if isinstance(value, str):
            masked = self.text.string(value.encode("utf-8", "surrogateescape"))
            return masked.decode("utf-8", "surrogateescape")
        return value

    def _env(self, item: dict[str, Any]) -> Any:
        name = item.get("name")
        if (
            isinstance(name, str)
            and SECRET_NAME.search(name.encode())
            and "value" in item
            and not is_trivial(str(item["value"]).encode())
        ):
            return {
                **self.mask({k: v for k, v in item.items() if k != "value"}),
                "value": self._ph(item["value"]),
            }
        return self.mask(item)
