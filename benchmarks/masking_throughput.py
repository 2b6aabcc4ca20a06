"""Masking throughput and memory on a large `kubectl get secrets -A -o yaml` stream.

    .venv/bin/python benchmarks/masking_throughput.py [--mb 64] [--mode yaml|json|text]

Generates a kubectl-shaped List of Secrets (TLS pairs, service-account tokens,
opaque passwords, dockerconfigjson, a Helm release blob now and then; random values
made up at run time), feeds it through `Masker` in 64 KiB chunks and reports MB/s and
peak traced memory. Goal (issue "Guarded kubectl"): >= 30 MB/s, memory flat (peak
independent of the stream size).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import time
import tracemalloc
from collections.abc import Iterator

from _common import emit
from jitkube.masking import Masker

CHUNK = 64 << 10


def _b64(n: int) -> str:
    return base64.b64encode(os.urandom(n)).decode()


def _secret(i: int, rng: random.Random, helm: bool) -> dict[str, object]:
    # Mix: many small Opaque secrets, TLS pairs, service-account tokens, pull secrets and
    # (unless --no-helm) a Helm release (one 40 kB line) every 50th object.
    kind = rng.choice(["tls", "sa", "opaque", "opaque", "docker"])
    if helm and i % 50 == 49:
        kind = "helm"
    if kind == "tls":
        data = {"tls.crt": _b64(1400), "tls.key": _b64(1700)}
        typ = "kubernetes.io/tls"
    elif kind == "sa":
        data = {"ca.crt": _b64(1100), "namespace": _b64(8), "token": _b64(700)}
        typ = "kubernetes.io/service-account-token"
    elif kind == "docker":
        data = {".dockerconfigjson": _b64(300)}
        typ = "kubernetes.io/dockerconfigjson"
    elif kind == "helm":
        data = {"release": _b64(30_000)}
        typ = "helm.sh/release.v1"
    else:
        data = {"password": _b64(18), "username": _b64(6)}
        typ = "Opaque"
    return {
        "apiVersion": "v1",
        "data": data,
        "kind": "Secret",
        "metadata": {
            "annotations": {"kubernetes.io/service-account.name": f"sa-{i}"},
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "labels": {"app": f"app-{i % 97}"},
            "name": f"secret-{i}",
            "namespace": f"ns-{i % 13}",
            "resourceVersion": str(1000 + i),
            "uid": f"00000000-0000-4000-8000-{i:012d}",
        },
        "type": typ,
    }


def _yaml_item(obj: dict[str, object]) -> str:
    """One List item as kubectl prints it (sorted keys, sequences at the key's indent)."""
    meta = obj["metadata"]
    assert isinstance(meta, dict)
    data = obj["data"]
    assert isinstance(data, dict)
    lines = ["- apiVersion: v1", "  data:"]
    lines += [f"    {k}: {v}" for k, v in data.items()]
    lines += ["  kind: Secret", "  metadata:", "    annotations:"]
    lines += [f"      {k}: {v}" for k, v in meta["annotations"].items()]
    lines += [f'    creationTimestamp: "{meta["creationTimestamp"]}"', "    labels:"]
    lines += [f"      {k}: {v}" for k, v in meta["labels"].items()]
    lines += [
        f"    name: {meta['name']}",
        f"    namespace: {meta['namespace']}",
        f'    resourceVersion: "{meta["resourceVersion"]}"',
        f"    uid: {meta['uid']}",
        f"  type: {obj['type']}",
    ]
    return "\n".join(lines) + "\n"


def _json_item(obj: dict[str, object], last: bool) -> str:
    """One List item as `kubectl get -o json` prints it (4-space indent)."""
    text = json.dumps(obj, indent=4, sort_keys=True)
    return "\n".join("        " + line for line in text.splitlines()) + ("\n" if last else ",\n")


def stream(total_bytes: int, mode: str = "yaml", helm: bool = True) -> Iterator[bytes]:
    """Chunks of one List document of about `total_bytes` (YAML, or JSON for json)."""
    rng = random.Random(1)
    head = (
        '{\n    "apiVersion": "v1",\n    "items": [\n'
        if mode == "json"
        else "apiVersion: v1\nitems:\n"
    )
    buf = bytearray(head.encode())
    produced = 0
    i = 0
    last = False
    while not last:
        obj = _secret(i, rng, helm)
        i += 1
        last = produced + len(buf) >= total_bytes
        if mode == "json":
            buf += _json_item(obj, last).encode()
        else:
            buf += _yaml_item(obj).encode()
        while len(buf) >= CHUNK:
            yield bytes(buf[:CHUNK])
            produced += CHUNK
            del buf[:CHUNK]
    if mode == "json":
        buf += b'    ],\n    "kind": "List",\n    "metadata": {\n'
        buf += b'        "resourceVersion": ""\n    }\n}\n'
    else:
        buf += b'kind: List\nmetadata:\n  resourceVersion: ""\n'
    yield bytes(buf)


def run(mb: int, mode: str, helm: bool) -> tuple[float, float, int, int]:
    chunks = list(stream(mb << 20, mode, helm))  # generated up front: time only the masker
    size = sum(map(len, chunks))
    masker = Masker(mode, key=b"benchmark-key")  # type: ignore[arg-type]
    tracemalloc.start()
    start = time.perf_counter()
    out = 0
    for chunk in chunks:
        out += len(masker.feed(chunk))
    out += len(masker.close())
    elapsed = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return size / elapsed / 1e6, peak / 1e6, masker.masked_count, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=64)
    parser.add_argument("--mode", default="yaml", choices=["yaml", "json"])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-helm", action="store_true", help="only small secrets (worst case)")
    args = parser.parse_args()
    # Throughput without tracemalloc's overhead. Machines here are shared and noisy, so
    # CPU time of this process is reported beside wall time; best of --runs.
    helm = not args.no_helm
    chunks = list(stream(args.mb << 20, args.mode, helm))
    size = sum(map(len, chunks))
    walls, cpus = [], []
    for _ in range(args.runs):
        masker = Masker(args.mode, key=b"benchmark-key")  # type: ignore[arg-type]
        wall, cpu = time.perf_counter(), time.process_time()
        for chunk in chunks:
            masker.feed(chunk)
        masker.close()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    del chunks
    _, peak_small, _, _ = run(max(1, args.mb // 8), args.mode, helm)
    _, peak_full, count, _ = run(args.mb, args.mode, helm)
    print(
        f"mode={args.mode} input={size / 1e6:.1f} MB "
        f"helm={helm} throughput={size / min(cpus) / 1e6:.1f} MB/s (CPU time; wall "
        f"{size / min(walls) / 1e6:.1f} MB/s) masked={count} "
        f"peak traced memory {peak_small:.2f} MB at "
        f"{max(1, args.mb // 8)} MiB input, {peak_full:.2f} MB at {args.mb} MiB input"
    )
    emit(
        f"masking throughput ({args.mode}, get secrets)",
        size / min(cpus) / 1e6,
        "MB/s",
        goal=(">=", 30),
        detail=f"CPU time, best of {args.runs}; wall {size / min(walls) / 1e6:.1f} MB/s",
    )
    # Flat memory: the peak at the full input over the peak at 1/8 of it (linear growth
    # would give about 8x).
    emit(
        f"masking peak memory, {args.mb} MiB / {max(1, args.mb // 8)} MiB input",
        peak_full / peak_small,
        "x",
        goal=("<=", 1.5),
        detail=f"peak traced {peak_full:.2f} MB vs {peak_small:.2f} MB",
    )


if __name__ == "__main__":
    main()
