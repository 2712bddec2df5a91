"""`python -m emulator`: start the stand-in and print one JSON line naming everything a client needs.

Two listeners in one process: HTTPS (Entra, Graph, Key Vault, admin) with a CA generated at
start, and plain HTTP on loopback for the managed identity endpoint, as App Service serves
IDENTITY_ENDPOINT on http://localhost. Ports may be 0 (pick free ones); the ready line
says which were chosen.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import trustme
import uvicorn

from .app import build
from .clouds import POSTURES, PUBLIC, posed_seed
from .seed import build_world, load_seed
from .state import World
from .tokens import TokenService

SAVE_INTERVAL_SECONDS = 1.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="HTTPS port; 0 picks a free one")
    parser.add_argument("--identity-port", type=int, default=0, help="managed identity (HTTP) port; 0 picks one")
    parser.add_argument("--data-dir", type=Path, help="keep CA, signing key and state here across restarts")
    parser.add_argument("--seed", type=Path, help="seed file (default: emulator/seed.json)")
    parser.add_argument("--admin", action="store_true", help="enable the /_emulator admin API (tests)")
    parser.add_argument("--access-log", action="store_true", help="log every request")
    parser.add_argument(
        "--cloud",
        choices=sorted(POSTURES),
        default=PUBLIC.name,
        help="the Microsoft cloud to pose as: its issuers, audiences and resource apps (emulator/clouds.py)",
    )
    return parser.parse_args(argv)


class _QuietExpected(logging.Filter):
    """Injected connection drops and idle connections cut at shutdown are on purpose, not errors."""

    EXPECTED = ("returned without completing response", "timeout graceful shutdown exceeded")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(text in message for text in self.EXPECTED)


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signal handling to us (two servers share one process)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets whose proto says TCP, and
    # accepted sockets inherit this one's. Without it every response waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def _certificates(data_dir: Path, host: str) -> tuple[Path, Path]:
    """The CA clients trust and the server's key + chain; kept in data_dir so trust survives restarts."""
    ca_cert, ca_key = data_dir / "ca.pem", data_dir / "ca-key.pem"
    if ca_cert.exists() and ca_key.exists():
        ca = trustme.CA.from_pem(ca_cert.read_bytes(), ca_key.read_bytes())
    else:
        ca = trustme.CA(organization_name="Tenant onboarding local stand-in")
        ca.cert_pem.write_to_path(str(ca_cert))
        ca.private_key_pem.write_to_path(str(ca_key))
        ca_key.chmod(0o600)
    names = sorted({"127.0.0.1", "localhost", "::1", host} - {"0.0.0.0", "::"})  # noqa: S104 - excluded, not bound
    server = ca.issue_cert(*names)
    server_pem = data_dir / "server.pem"
    server.private_key_and_cert_chain_pem.write_to_path(str(server_pem))
    server_pem.chmod(0o600)
    return ca_cert, server_pem


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", "::"):  # noqa: S104 - a wildcard bind is reached through loopback
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


async def serve(args: argparse.Namespace) -> None:
    persistent = args.data_dir is not None
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="standin-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        await _serve_in(args, data_dir, persistent)
    finally:
        if not persistent:
            shutil.rmtree(data_dir, ignore_errors=True)


async def _serve_in(args: argparse.Namespace, data_dir: Path, persistent: bool) -> None:
    ca_bundle, server_pem = _certificates(data_dir, args.host)
    posture = POSTURES[args.cloud]
    seed = posed_seed(load_seed(args.seed), posture)
    state_file = data_dir / "state.json"
    world = (
        World.restore(json.loads(state_file.read_text())) if persistent and state_file.exists() else build_world(seed)
    )
    tokens = TokenService(key_path=data_dir / "signing-key.pem" if persistent else None, posture=posture)

    https_sock = _bind(args.host, args.port)
    identity_sock = _bind("127.0.0.1", args.identity_port)
    https_port = https_sock.getsockname()[1]
    identity_port = identity_sock.getsockname()[1]
    public_base = f"https://{_url_host(args.host)}:{https_port}"
    stand_in = build(world, tokens, seed, public_base, admin=args.admin)

    logging.getLogger("uvicorn.error").addFilter(_QuietExpected())
    # Idle TLS keep-alive connections wait for the peer's close_notify on shutdown, which an idle
    # client never sends; a short graceful timeout keeps stop fast without cutting live requests.
    common = {
        "log_level": "warning",
        "access_log": args.access_log,
        "lifespan": "off",
        "timeout_keep_alive": 30,
        "timeout_graceful_shutdown": 1,
    }
    https_server = _Server(
        uvicorn.Config(stand_in.https_app, ssl_certfile=str(server_pem), ssl_keyfile=str(server_pem), **common)
    )
    identity_server = _Server(uvicorn.Config(stand_in.identity_app, **common))

    def stop() -> None:
        https_server.should_exit = True
        identity_server.should_exit = True

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop)

    async def save_periodically() -> None:
        while True:
            await asyncio.sleep(SAVE_INTERVAL_SECONDS)
            if persistent and world.dirty:
                world.save(state_file)

    tasks = [
        asyncio.create_task(https_server.serve(sockets=[https_sock])),
        asyncio.create_task(identity_server.serve(sockets=[identity_sock])),
    ]
    saver = asyncio.create_task(save_periodically())
    while not (https_server.started and identity_server.started):
        if any(t.done() for t in tasks):
            break
        await asyncio.sleep(0.01)
    if https_server.started and identity_server.started:
        ready = {
            "graph_url": f"{public_base}/v1.0",
            "vault_url": public_base,
            "authority": public_base,
            "identity_endpoint": f"http://127.0.0.1:{identity_port}/msi/token",
            "identity_header": stand_in.identity_header,
            "ca_bundle": str(ca_bundle),
            "home_tenant_id": world.home_tenant_id,
            "managed_identity_client_id": world.default_managed_identity,
            "managed_identity_object_id": world.managed_identities[world.default_managed_identity or ""][1],
            "customer_tenant_ids": [t for t in world.tenants if t != world.home_tenant_id],
            "admin_url": f"{public_base}/_emulator" if stand_in.admin_key else None,
            "admin_key": stand_in.admin_key,
            "pid": os.getpid(),
            "cloud": posture.name,
        }
        sys.stdout.write(json.dumps(ready) + "\n")
        sys.stdout.flush()
    try:
        await asyncio.gather(*tasks)
    finally:
        saver.cancel()
        if persistent:
            world.save(state_file)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
