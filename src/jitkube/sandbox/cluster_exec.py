"""`kubectl exec` against the sandbox: the Kubernetes WebSocket remote-command protocol.

kubectl 1.30+ upgrades `POST/GET …/pods/NAME/exec?command=…&stdin=…&tty=…` to a
WebSocket with subprotocol `v5.channel.k8s.io` (v4 accepted too): every binary message
starts with a channel byte (0 stdin, 1 stdout, 2 stderr, 3 error/status, 4 resize,
255 close-a-channel in v5). The "container" is a tiny line shell, enough to show that a
TTY and signals reach it: `tty`, `echo …`, `env`, `whoami`, `exit [N]`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from collections.abc import Mapping
from typing import Any, BinaryIO

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255


class _Socket:
    """Just enough RFC 6455 for the server side: masked client frames in, plain out."""

    def __init__(self, rfile: BinaryIO, wfile: BinaryIO) -> None:
        self.rfile = rfile
        self.wfile = wfile

    def _read(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.rfile.read(n - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data

    def receive(self) -> tuple[int, bytes]:
        """(opcode, payload) of the next complete message; pings are answered here."""
        message = b""
        while True:
            b1, b2 = self._read(2)
            opcode, length = b1 & 0x0F, b2 & 0x7F
            if length == 126:
                (length,) = struct.unpack("!H", self._read(2))
            elif length == 127:
                (length,) = struct.unpack("!Q", self._read(8))
            mask = self._read(4) if b2 & 0x80 else b""
            payload = self._read(length)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if opcode == 0x9:
                self.send(payload, opcode=0xA)
                continue
            if opcode == 0xA:
                continue
            message += payload
            if b1 & 0x80:
                return opcode, message

    def send(self, payload: bytes, opcode: int = 0x2) -> None:
        header = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            header += bytes([n])
        elif n < 65536:
            header += bytes([126]) + struct.pack("!H", n)
        else:
            header += bytes([127]) + struct.pack("!Q", n)
        self.wfile.write(header + payload)
        self.wfile.flush()


def accept_key(key: str) -> str:
    return base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest()).decode()  # noqa: S324 - RFC 6455


def wants_websocket(headers: Any) -> bool:
    return "websocket" in (headers.get("Upgrade") or "").lower()


class _Shell:
    """The fake container's shell."""

    def __init__(self, pod: Mapping[str, Any], tty: bool) -> None:
        self.tty = tty
        spec = pod.get("spec") or {}
        containers = spec.get("containers") or [{}]
        self.env = {
            str(e.get("name")): str(e.get("value"))
            for e in containers[0].get("env") or []
            if "value" in e
        }

    def run(self, words: list[str]) -> tuple[str, int | None]:
        """Output of one command line, and an exit code when the shell should end."""
        if not words:
            return "", None
        cmd, args = words[0], words[1:]
        if cmd == "exit":
            return "", int(args[0]) if args and args[0].isdigit() else 0
        if cmd == "tty":
            return ("/dev/pts/0" if self.tty else "not a tty") + "\n", None
        if cmd == "echo":
            return " ".join(args) + "\n", None
        if cmd == "whoami":
            return "root\n", None
        if cmd in ("env", "printenv"):
            return "".join(f"{k}={v}\n" for k, v in sorted(self.env.items())), None
        return f"sh: {cmd}: not found\n", None


def serve_exec(
    handler: Any, pod: Mapping[str, Any], query: Mapping[str, list[str]], protocol: str
) -> None:
    """Answer the upgrade and run the session until the shell exits or the client leaves."""
    key = handler.headers.get("Sec-WebSocket-Key", "")
    handler.send_response(101)
    handler.send_header("Upgrade", "websocket")
    handler.send_header("Connection", "Upgrade")
    handler.send_header("Sec-WebSocket-Accept", accept_key(key))
    handler.send_header("Sec-WebSocket-Protocol", protocol)
    handler.end_headers()
    handler.wfile.flush()
    handler.close_connection = True
    ws = _Socket(handler.rfile, handler.wfile)
    tty = (query.get("tty") or ["false"])[-1] == "true"
    stdin = (query.get("stdin") or ["false"])[-1] == "true"
    command = query.get("command") or ["sh"]
    shell = _Shell(pod, tty)

    def out(text: str) -> None:
        if text:
            data = text.replace("\n", "\r\n") if tty else text
            ws.send(bytes([STDOUT]) + data.encode())

    def finish(code: int) -> None:
        if code == 0:
            status: dict[str, Any] = {"metadata": {}, "status": "Success"}
        else:
            status = {
                "metadata": {},
                "status": "Failure",
                "message": f"command terminated with non-zero exit code: {code}",
                "reason": "NonZeroExitCode",
                "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
            }
        ws.send(bytes([ERROR]) + json.dumps(status).encode())
        ws.send(struct.pack("!H", 1000), opcode=0x8)
        # Close handshake: wait for the client's close before dropping the connection, or
        # a reset may destroy output it has not read yet.
        try:
            handler.connection.settimeout(5)
            while ws.receive()[0] != 0x8:
                pass
        except (EOFError, OSError):
            pass

    if command[0] not in ("sh", "bash", "/bin/sh", "/bin/bash"):
        text, code = shell.run(command)
        out(text)
        finish(code or 0)
        return
    if not stdin:
        finish(0)
        return
    line = b""
    try:
        while True:
            opcode, message = ws.receive()
            if opcode == 0x8:
                return
            if not message or message[0] != STDIN:
                continue  # resize events and v5 close-channel messages need no answer
            for byte in message[1:]:
                ch = bytes([byte])
                if ch in (b"\r", b"\n"):
                    if tty:
                        out("\n")
                    text, code = shell.run(line.decode(errors="replace").split())
                    line = b""
                    out(text)
                    if code is not None:
                        finish(code)
                        return
                elif ch == b"\x03" and tty:  # Ctrl-C on a terminal: the shell survives
                    line = b""
                    out("^C\n")
                elif ch == b"\x04" and not line:  # Ctrl-D ends the shell
                    finish(0)
                    return
                else:
                    line += ch
                    if tty:
                        out(ch.decode(errors="replace"))  # the terminal echoes
    except (EOFError, OSError):
        return
