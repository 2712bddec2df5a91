"""A stand-in for Application Insights' ingestion endpoint: records what the Azure Monitor exporter sends.

The exporter posts batches of telemetry envelopes as JSON to `<IngestionEndpoint>/v2.1/track` and
reads back `{"itemsReceived", "itemsAccepted", "errors"}`, the answer the real Breeze endpoint gives.
Pointing a connection string at this server shows what would land in Application Insights, byte for
byte, without Azure.
"""

from __future__ import annotations

import gzip
import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Ingestion:
    def __init__(self, refuse_first: int = 0) -> None:
        """`refuse_first`: answer that many batches with 206 and a retryable 500 for every item, as a
        struggling ingestion does; the exporter then keeps them in its offline storage, on disk, to send
        later (none of them counts as received here)."""
        self.refuse = refuse_first
        self.envelopes: list[dict[str, Any]] = []
        self.raw: list[bytes] = []  # every request body as received, for scanning for secrets
        self.lock = threading.Lock()
        ingestion = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                items = json.loads(body) if self.path.endswith("/track") else []
                with ingestion.lock:
                    ingestion.raw.append(body)
                    refused = ingestion.refuse > 0
                    if refused:
                        ingestion.refuse -= 1
                    else:
                        ingestion.envelopes.extend(items)
                errors = [{"index": i, "statusCode": 500, "message": "try again"} for i in range(len(items))]
                answer = json.dumps(
                    {"itemsReceived": len(items), "itemsAccepted": 0 if refused else len(items),
                     "errors": errors if refused else []}
                ).encode()  # fmt: skip
                self.send_response(206 if refused else 200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def connection_string(self) -> str:
        port = self.server.server_address[1]
        return f"InstrumentationKey={uuid.uuid4()};IngestionEndpoint=http://127.0.0.1:{port}/"

    def custom_events(self) -> list[dict[str, Any]]:
        """(name, customDimensions) of every custom event received, as Application Insights would store them."""
        with self.lock:
            return [
                {"name": e["data"]["baseData"]["name"], "customDimensions": e["data"]["baseData"].get("properties", {})}
                for e in self.envelopes
                if e.get("data", {}).get("baseType") == "EventData"
            ]


def running_ingestion(refuse_first: int = 0) -> Iterator[Ingestion]:
    ingestion = Ingestion(refuse_first)
    ingestion.thread.start()
    try:
        yield ingestion
    finally:
        ingestion.server.shutdown()
        ingestion.server.server_close()
