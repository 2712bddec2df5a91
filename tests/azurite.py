"""Runs Azurite (the real local Azure Storage, from npm) for tests that need blob leases."""

from __future__ import annotations

import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
AZURITE = REPO / "node_modules" / ".bin" / "azurite-blob"
# Azurite's published development account and key (learn.microsoft.com/azure/storage/common/storage-use-azurite).
DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
LISTENING = re.compile(r"listens on (http://[\d.]+:\d+)")


@dataclass
class Azurite:
    process: subprocess.Popen[str]
    blob_endpoint: str

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};"
            f"BlobEndpoint={self.blob_endpoint}/{DEV_ACCOUNT};"
        )

    def stop(self) -> None:
        # In-memory and disposable: nothing to flush, and Azurite takes seconds over a graceful stop.
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def start_azurite(timeout: float = 30) -> Azurite:
    if not AZURITE.exists():
        raise RuntimeError("Azurite is not installed: run scripts/setup (it runs npm ci)")
    process = subprocess.Popen(
        [str(AZURITE), "--inMemoryPersistence", "--blobHost", "127.0.0.1", "--blobPort", "0", "--skipApiVersionCheck"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        match = LISTENING.search(line)
        if match:
            return Azurite(process, match.group(1))
    process.kill()
    raise RuntimeError("Azurite did not start")
