"""A stand-in for the Azure CLI (`az`) that the azd hooks in infra/hooks/ call, for tests/infra/test_hooks.py.

Runs under .venv-infra's Python, which has jmespath (checkov's dependency, as the Azure CLI's): `--query` is
evaluated by the JMESPath library the real CLI uses, and `--output tsv` printed as knack (the CLI's output
layer) prints it, so a wrong query fails here as it would there. It answers from a world described in
$FAKE_AZ_DIR/world.json, keeps what the hooks changed in state.json, and records every call's arguments,
one JSON array a line, in calls.jsonl. Errors look like the CLI's: `ERROR: <reason>(<Graph's JSON body>)`
on stderr and exit status 1 (azure-cli, azure/cli/core/util.py, send_raw_request).

What it models, each from a public source named where the test uses it: the replication answers of a
grant to a new identity and of a credential on a new app, Graph's "already exists" answer to a repeated
grant, Graph reached in the CLI's default tenant, the Event Grid system key appearing after a while, and
the Windows CLI's CRLF line ends.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import sys
from io import StringIO
from pathlib import Path
from typing import Any

jmespath = importlib.import_module("jmespath")  # in .venv-infra only, where this runs

PUBLIC_GRAPH = "https://graph.microsoft.com"
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
TAKES_MANY = {"--parameters", "--headers"}


class AzError(Exception):
    def __init__(self, reason: str, code: str = "", message: str = "") -> None:
        body = json.dumps({"error": {"code": code, "message": message}}) if code else ""
        super().__init__(f"{reason}({body})" if body else reason)


def parse(argv: list[str]) -> tuple[str, dict[str, list[str]]]:
    words: list[str] = []
    options: dict[str, list[str]] = {}
    current: str | None = None
    for arg in argv:
        if arg.startswith("--"):
            current = arg
            options.setdefault(arg, [])
        elif current is None:
            words.append(arg)
        else:
            options[current].append(arg)
            if current not in TAKES_MANY:
                current = None
    return " ".join(words), options


def one(options: dict[str, list[str]], name: str, default: str = "") -> str:
    values = options.get(name) or [default]
    return values[0]


def tsv(result: Any) -> str:
    """knack's _TsvOutput: one line per item of a list, a row's values separated by tabs."""
    out = StringIO()
    for row in result if isinstance(result, list) else [result]:
        if isinstance(row, dict):
            values: list[Any] = [value for _, value in sorted(row.items())]
        elif isinstance(row, list):
            values = row
        else:
            values = [str(row).lower() if isinstance(row, bool) else row]
        out.write(
            "\t".join(str(len(v)) if isinstance(v, list) else "" if isinstance(v, dict) else str(v) for v in values)
        )
        out.write("\n")
    return out.getvalue()


class FakeAz:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.world: dict[str, Any] = json.loads((folder / "world.json").read_text(encoding="utf-8"))
        state_file = folder / "state.json"
        self.state: dict[str, Any] = (
            json.loads(state_file.read_text(encoding="utf-8"))
            if state_file.exists()
            else {"counts": {}, "assignments": [], "credentials": {}, "deployments": []}
        )

    def count(self, what: str) -> int:
        self.state["counts"][what] = self.state["counts"].get(what, 0) + 1
        return int(self.state["counts"][what])

    def save(self) -> None:
        (self.folder / "state.json").write_text(json.dumps(self.state), encoding="utf-8")

    def run(self, argv: list[str]) -> int:
        with (self.folder / "calls.jsonl").open("a", encoding="utf-8") as log:
            log.write(json.dumps(argv) + "\n")
        command, options = parse(argv)
        try:
            self.check_subscription(options)
            result = self.dispatch(command, options)
        except AzError as error:
            self.save()
            sys.stderr.write(f"ERROR: {error}\n")
            return 1
        self.save()
        self.write(result, options)
        return 0

    def check_subscription(self, options: dict[str, list[str]]) -> None:
        if self.world.get("signed_out"):
            raise AzError("Please run 'az login' to setup account.")
        subscription = one(options, "--subscription", self.world["default_subscription"])
        if subscription not in self.world["subscriptions"]:
            raise AzError(f"Subscription '{subscription}' not found. Check the spelling and casing and try again.")

    def write(self, result: Any, options: dict[str, list[str]]) -> None:
        query = one(options, "--query")
        if query:
            result = jmespath.search(query, result)
        output = one(options, "--output", "json")
        if result is None or output == "none":
            return
        text = tsv(result) if output == "tsv" else json.dumps(result, indent=2) + "\n"
        if self.world.get("crlf"):
            text = text.replace("\n", "\r\n")
        sys.stdout.buffer.write(text.encode("utf-8"))

    def dispatch(self, command: str, options: dict[str, list[str]]) -> Any:
        if command == "account show":
            subscription = one(options, "--subscription", self.world["default_subscription"])
            return {"id": subscription, "tenantId": self.world["subscriptions"][subscription]}
        if command == "functionapp keys list":
            system_keys = {"eventgrid_extension": "k3y"} if self.count("keys") >= self.world["key_after"] else {}
            return {"functionKeys": {"default": "f"}, "masterKey": "m", "systemKeys": system_keys}
        if command == "deployment group create":
            self.state["deployments"].append(options)
            return {"properties": {"provisioningState": "Succeeded"}}
        if command == "rest":
            return self.graph(one(options, "--method", "get").lower(), one(options, "--url"), options)
        raise AzError(f"fake az: no such command {command!r}")

    def graph(self, method: str, url: str, options: dict[str, list[str]]) -> Any:
        world, state = self.world, self.state
        # The world's cloud's Graph. A token for another audience is refused as Graph refuses it; without
        # --resource the CLI asks for its own cloud's Graph (here the public one), as azure-cli's send_raw_request.
        root = world.get("graph_root", PUBLIC_GRAPH)
        if not url.startswith(f"{root}/v1.0/"):
            raise AzError("Bad Request", "BadRequest", f"fake az: {url} is not this cloud's Graph ({root})")
        if one(options, "--resource", PUBLIC_GRAPH) != root:
            raise AzError(
                "Unauthorized", "InvalidAuthenticationToken", "Access token validation failure. Invalid audience."
            )
        path = url.removeprefix(f"{root}/v1.0")
        if method == "get" and path == "/organization":
            return {"value": [{"id": world["graph_tenant"]}]}
        if method == "get" and path in (
            f"/servicePrincipals(appId='{GRAPH_APP_ID}')",
            f"/servicePrincipals/{world['graph_sp']}",
        ):
            return {"id": world["graph_sp"], "appId": GRAPH_APP_ID, "appRoles": world["app_roles"]}
        match = re.fullmatch(r"/servicePrincipals/([^/]+)/appRoleAssignments", path)
        if method == "get" and match:
            if match.group(1) != world["principal_id"] or world.get("assignments_unreadable"):
                raise AzError("Not Found", "Request_ResourceNotFound", f"Resource '{match.group(1)}' does not exist.")
            return {"value": [a for a in state["assignments"] if a["principalId"] == match.group(1)]}
        if method == "post" and path == f"/servicePrincipals/{world['graph_sp']}/appRoleAssignedTo":
            return self.grant(json.loads(one(options, "--body")))
        match = re.fullmatch(
            r"/applications\(uniqueName='([^']+)'\)/federatedIdentityCredentials\(name='([^']+)'\)", path
        )
        if method == "patch" and match:
            return self.upsert_credential(match.group(1), match.group(2), options)
        raise AzError("Bad Request", "BadRequest", f"fake az: no route {method.upper()} {url}")

    def grant(self, body: dict[str, Any]) -> Any:
        world, state = self.world, self.state
        attempt = self.count("grant")
        if world.get("grant_error"):
            raise AzError(*world["grant_error"])
        if attempt <= world.get("grant_replication_failures", 0):
            raise AzError("Bad Request", "Request_BadRequest", "Not a valid reference update.")
        if body.get("principalId") != world["principal_id"] or body.get("resourceId") != world["graph_sp"]:
            raise AzError("Bad Request", "Request_BadRequest", "fake az: unexpected principal or resource")
        if body.get("appRoleId") not in {r["id"] for r in world["app_roles"]}:
            raise AzError("Bad Request", "Request_BadRequest", "Permission being assigned was not found on application")
        if any(
            a["appRoleId"] == body["appRoleId"] and a["principalId"] == body["principalId"]
            for a in state["assignments"]
        ):
            raise AzError(
                "Bad Request", "Request_BadRequest", "Permission being assigned already exists on the object."
            )
        state["assignments"].append(body)
        return {"id": f"assignment-{len(state['assignments'])}", **body}

    def upsert_credential(self, unique_name: str, name: str, options: dict[str, list[str]]) -> Any:
        world = self.world
        attempt = self.count("credential")
        if attempt <= world.get("credential_replication_failures", 0) or unique_name not in world["applications"]:
            raise AzError(
                "Not Found",
                "Request_ResourceNotFound",
                f"Resource '{unique_name}' does not exist or one of its queried reference-property objects are not present.",
            )
        credentials = self.state["credentials"].setdefault(unique_name, {})
        if name not in credentials and "Prefer=create-if-missing" not in options.get("--headers", []):
            raise AzError("Not Found", "Request_ResourceNotFound", f"Resource '{name}' does not exist.")
        credentials[name] = json.loads(one(options, "--body"))
        return None


if __name__ == "__main__":
    sys.exit(FakeAz(Path(os.environ["FAKE_AZ_DIR"])).run(sys.argv[1:]))
