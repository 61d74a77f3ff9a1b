"""Skip's own runtime, for side-by-side figures: installed from npm into a scratch folder outside
the repository on request, never committed.

    .venv/bin/python -m bench.skip_runtime install     # what `make bench-skip` runs first

The workloads are our own Skip services (bench/skip/service.mjs, copied next to the packages);
`skip_service()` runs one on the machine's Node.js and yields an `Endpoint` (control and
streaming ports apart, as Skip serves them)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from bench.endpoints import Endpoint
from skiff.dev.embedded_redis import free_port

VERSION = "0.0.15"
PACKAGES = tuple(f"@skipruntime/{name}@{VERSION}" for name in ("server", "core", "helpers", "wasm"))
TEMPLATE = Path(__file__).parent / "skip" / "service.mjs"


def scratch_dir() -> Path:
    """$SKIFF_BENCH_SKIP_DIR, else $XDG_CACHE_HOME/skiff-bench-skip (~/.cache by default)."""
    explicit = os.environ.get("SKIFF_BENCH_SKIP_DIR")
    if explicit:
        return Path(explicit)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "skiff-bench-skip"


def node_version() -> str | None:
    node = shutil.which("node")
    if node is None:
        return None
    return subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()


def unavailable_reason() -> str | None:
    """Why Skip cannot run here, or None when it can."""
    if shutil.which("node") is None:
        return "Node.js (`node`) is not on PATH"
    folder = scratch_dir()
    for package in PACKAGES:
        name = package.rsplit("@", 1)[0]
        manifest = folder / "node_modules" / name / "package.json"
        if not manifest.exists():
            return f"{name} is not installed in {folder} (run `make bench-skip`)"
        if json.loads(manifest.read_text()).get("version") != VERSION:
            return f"{name} in {folder} is not version {VERSION} (run `make bench-skip`)"
    return None


def install() -> Path:
    """npm-install Skip's packages (exactly VERSION) into the scratch folder."""
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is not on PATH")
    folder = scratch_dir()
    folder.mkdir(parents=True, exist_ok=True)
    manifest = folder / "package.json"
    if not manifest.exists():
        manifest.write_text(json.dumps({"name": "skiff-bench-skip", "private": True}) + "\n")
    if unavailable_reason() is not None:
        subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--save-exact", *PACKAGES],
            cwd=folder,
            check=True,
        )
    return folder


@contextlib.contextmanager
def skip_service(workload: str, keys: int, timeout: float = 300.0) -> Iterator[Endpoint]:
    """Run bench/skip/service.mjs WORKLOAD on Skip's wasm runtime until the block exits."""
    reason = unavailable_reason()
    if reason:
        raise RuntimeError(f"Skip is unavailable: {reason}")
    folder = scratch_dir()
    shutil.copyfile(TEMPLATE, folder / "service.mjs")
    control, streaming = free_port(), free_port()
    log_path = folder / f"{workload}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            ["node", "service.mjs", workload, str(control), str(streaming), str(keys)],
            cwd=folder,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                tail = log_path.read_text(errors="replace")[-600:]
                raise RuntimeError(f"Skip ({workload}, {keys:,} keys) exited: {tail}")
            try:
                url = f"http://127.0.0.1:{control}/v1/healthcheck"
                if httpx.get(url, timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"Skip ({workload}) not ready after {timeout}s")
            time.sleep(0.1)
        yield Endpoint("skip", control, streaming, {"node": proc.pid})
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["install"]:
        print(f"Skip {VERSION} in {install()} (node {node_version()})")
        return 0
    print(unavailable_reason() or f"Skip {VERSION} ready in {scratch_dir()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
