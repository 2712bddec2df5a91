"""The stand-in replays what Microsoft's own live tests recorded against real Key Vault and Graph.

`tests/emulator/recorded.py` holds the recorded exchanges (status, keys, error codes, values),
each citing the recording it was read from. Here the equivalent requests are sent to a stand-in,
in the order the recordings made them, over raw HTTP with bearer tokens from the stand-in's own
identity endpoints, and each response is compared with its recording aspect by aspect.

The stand-in's vault is set up as every recorded vault was (7 days' soft-delete retention, no
purge protection), so values that follow from that setting can be compared too. Where the
stand-in answers differently, the case is a strict xfail naming the difference: the stand-in
changes only with a source, and the recording is that source.
"""

from __future__ import annotations

import json
import re
import ssl
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from emulator.launcher import REPO, StandIn, start_stand_in
from tests.emulator.recorded import CASES, RECOVERABLE_DAYS, Case

API_VERSION = "7.3"  # the version every replayed Key Vault recording used
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
GRAPH_RESOURCE = "https://graph.microsoft.com"
VAULT_RESOURCE = "https://vault.azure.net"
MISSING = "recorded-missing"

# (case, aspect) -> what the stand-in does differently from the recording.
DIFFERENCES: dict[tuple[str, str], str] = {
    ("graph-create-app-web", "shape"): "given a partial web object the stand-in stores it as sent, so the "
    "application has no web.logoutUrl or web.implicitGrantSettings; Graph returns every property of the complex "
    "type, the unsent ones at their defaults",
    ("graph-create-app-web", "values"): "the stand-in's web has no logoutUrl (see the shape difference)",
    ("graph-organization", "shape"): "the stand-in's organization has only id, displayName, tenantType and "
    "verifiedDomains of the recorded properties",
    ("graph-add-password-key-id", "values"): "Graph keeps the keyId the caller puts in passwordCredential; the "
    "stand-in always generates its own",
    ("graph-select-id", "values"): "with $select Graph's @odata.context names the selected properties "
    "(#applications(id)/$entity); the stand-in's is #applications/$entity",
}
ASPECTS = ("status", "error", "shape", "values")


@dataclass
class Observed:
    status: int
    body: Any
    headers: httpx.Headers
    context: dict[str, str] = field(default_factory=dict)


class Replay:
    """Raw HTTP to the stand-in, as the recordings' clients sent it."""

    def __init__(self, stand_in: StandIn) -> None:
        self.stand_in = stand_in
        self.http = httpx.Client(verify=ssl.create_default_context(cafile=stand_in.ca_bundle), timeout=30)
        self.vault_token = self.managed_identity_token(VAULT_RESOURCE)
        self.graph_token = self.managed_identity_token(GRAPH_RESOURCE)
        self.observed: dict[str, Observed] = {}

    def managed_identity_token(self, resource: str) -> str:
        env = self.stand_in.identity_env()
        response = self.http.get(
            env["IDENTITY_ENDPOINT"],
            params={"api-version": "2019-08-01", "resource": resource},
            headers={"X-IDENTITY-HEADER": env["IDENTITY_HEADER"]},
        )
        response.raise_for_status()
        return str(response.json()["access_token"])

    def client_token(self, client_id: str, secret: str) -> str:
        response = self.http.post(
            f"{self.stand_in.authority}/{self.stand_in.home_tenant_id}/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": secret,
                "scope": f"{GRAPH_RESOURCE}/.default",
            },
        )
        response.raise_for_status()
        return str(response.json()["access_token"])

    def send(
        self, url: str, method: str, body: Any, token: str | None, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> Observed:
        headers = dict(headers or {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        content = json.dumps(body).encode() if body is not None else None
        if content is not None:
            headers["Content-Type"] = "application/json"
        response = self.http.request(method, url, content=content, headers=headers, **kwargs)
        parsed = response.json() if response.content else None
        return Observed(response.status_code, parsed, response.headers)

    def vault(self, case: str, method: str, path: str, body: Any = None, token: bool = True, **ctx: str) -> Observed:
        url = f"{self.stand_in.vault_url}{path}"
        api_version = ctx.pop("api_version", API_VERSION)
        observed = self.send(
            url, method, body, self.vault_token if token else None, params={"api-version": api_version}
        )
        return self._keep(case, observed, ctx)

    def graph(
        self, case: str, method: str, path: str, body: Any = None, token: str | None = None, **ctx: Any
    ) -> Observed:
        params, headers = ctx.pop("params", None), ctx.pop("headers", None)
        url = f"{self.stand_in.graph_url}{path}"
        observed = self.send(url, method, body, token or self.graph_token, headers, params=params)
        return self._keep(case, observed, ctx)

    def _keep(self, case: str, observed: Observed, ctx: Mapping[str, str]) -> Observed:
        assert case not in self.observed, case
        observed.context = {
            "vault": self.stand_in.vault_url,
            "tenant": self.stand_in.home_tenant_id,
            "missing": MISSING,
            **ctx,
        }
        self.observed[case] = observed
        return observed


def replay_key_vault(r: Replay) -> None:
    # The secret of the recorded recover sample: challenge, set, delete, read deleted, recover.
    name = "recorded-recover"
    r.vault("kv-challenge", "PUT", f"/secrets/{name}", token=False)
    r.vault("kv-set", "PUT", f"/secrets/{name}", {"value": "secret-value"}, name=name)
    r.vault("kv-delete", "DELETE", f"/secrets/{name}", name=name)
    r.vault("kv-get-deleted", "GET", f"/deletedsecrets/{name}", name=name)
    r.vault("kv-recover", "POST", f"/deletedsecrets/{name}/recover", name=name)
    r.vault("kv-get-missing", "GET", f"/secrets/{MISSING}/")
    r.vault("kv-get-deleted-missing", "GET", f"/deletedsecrets/{MISSING}")
    r.vault("kv-delete-missing", "DELETE", f"/secrets/{MISSING}")

    # The versions sample: three versions of one name, its listing, then delete and purge.
    versions = "recorded-versions"
    r.vault("kv-set-empty-attributes", "PUT", f"/secrets/{versions}", {"attributes": {}, "value": "value0"})
    for value in ("value1", "value2"):
        r.vault(f"setup-{value}", "PUT", f"/secrets/{versions}", {"attributes": {}, "value": value})
    r.vault("kv-versions", "GET", f"/secrets/{versions}/versions", name=versions)
    r.vault("kv-versions-missing", "GET", f"/secrets/{MISSING}/versions")

    # The list sample's listing: only secrets without expiry, content type or tags exist yet.
    r.vault("kv-list", "GET", "/secrets")

    # The CRUD sample: set with expiry, read latest and by version, update, delete, list deleted.
    crud = "recorded-crud"
    created = r.vault(
        "kv-set-with-expiry", "PUT", f"/secrets/{crud}", {"value": "secret-value", "attributes": {"exp": 2527401600}}
    )
    version = str(created.body["id"]).rsplit("/", 1)[-1]
    r.vault("kv-get-latest", "GET", f"/secrets/{crud}/")
    r.vault("kv-get-version", "GET", f"/secrets/{crud}/{version}", name=crud, version=version)
    r.vault("kv-update", "PATCH", f"/secrets/{crud}/", {"contentType": "text/plain", "tags": {"foo": "updated tag"}})
    r.vault("setup-delete-crud", "DELETE", f"/secrets/{crud}")
    r.vault("setup-delete-versions", "DELETE", f"/secrets/{versions}")
    r.vault("kv-list-deleted", "GET", "/deletedsecrets", name=crud)  # names sort "crud" first
    r.vault("kv-purge", "DELETE", f"/deletedsecrets/{versions}")

    # A vault holding more secrets than one page: the listing carries a nextLink.
    for index in range(26):
        r.vault(f"setup-list-{index}", "PUT", f"/secrets/recorded-list-{index:02d}", {"value": f"value{index}"})
    r.vault("kv-list-paged", "GET", "/secrets")

    disabled = "recorded-disabled"
    r.vault(
        "setup-disabled", "PUT", f"/secrets/{disabled}", {"value": "SECRET_VALUE", "attributes": {"enabled": False}}
    )
    r.vault("kv-get-disabled", "GET", f"/secrets/{disabled}/", api_version="7.4")


def replay_graph(r: Replay) -> None:
    unique = uuid.uuid4().hex[:10]
    prefix = f"recorded-{unique}"
    web = {"homePageUrl": f"https://{prefix}.example", "redirectUris": [f"https://{prefix}.example/reply"]}
    app = r.graph(
        "graph-create-app",
        "POST",
        "/applications",
        {"displayName": prefix, "signInAudience": "AzureADMultipleOrgs", "web": web},
    ).body
    app_id, object_id = str(app["appId"]), str(app["id"])
    r.graph(
        "graph-create-app-with-key-credentials",
        "POST",
        "/applications",
        {"displayName": f"{prefix}-cli", "keyCredentials": []},
    )
    r.graph(
        "graph-filter-startswith-none",
        "GET",
        "/applications",
        params={"$filter": f"startswith(displayName,'{prefix}-none')"},
    )

    now = datetime.now(UTC).replace(microsecond=0)
    start, end = now.strftime("%Y-%m-%dT%H:%M:%SZ"), (now + timedelta(days=365)).strftime("%Y-%m-%dT%H:%M:%SZ")
    added = r.graph(
        "graph-add-password",
        "POST",
        f"/applications/{object_id}/addPassword",
        {"passwordCredential": {"displayName": "key1", "endDateTime": end, "startDateTime": start}},
        start=start,
        end=end,
    )
    added.context["secret_prefix"] = str(added.body.get("secretText") or "")[:3]
    key_id = str(uuid.uuid4())
    r.graph(
        "graph-add-password-key-id",
        "POST",
        f"/applications/{object_id}/addPassword",
        {"passwordCredential": {"keyId": key_id, "startDateTime": start}},
        key_id=key_id,
    )
    r.graph("graph-get-app", "GET", f"/applications/{object_id}")
    r.graph("graph-filter-app-id", "GET", "/applications", params={"$filter": f"appId eq '{app_id}'"})
    r.graph("graph-select-id", "GET", f"/applications/{object_id}", params={"$select": "Id"})
    r.graph("graph-patch-app", "PATCH", f"/applications/{object_id}", {"signInAudience": "AzureADMyOrg", "web": web})
    r.graph(
        "graph-remove-password", "POST", f"/applications/{object_id}/removePassword", {"keyId": added.body["keyId"]}
    )

    sp = r.graph("graph-create-sp", "POST", "/servicePrincipals", {"appId": app_id, "accountEnabled": True}).body
    r.graph(
        "graph-filter-sp-names",
        "GET",
        "/servicePrincipals",
        params={"$filter": f"servicePrincipalNames/any(c:c eq '{app_id}')"},
    )
    r.graph("graph-get-sp", "GET", f"/servicePrincipals/{sp['id']}")
    r.graph("graph-delete-app", "DELETE", f"/applications/{object_id}")
    r.graph("graph-purge-deleted-app", "DELETE", f"/directory/deletedItems/{object_id}")

    # A caller granted Organization.Read.All and nothing on applications, as a tenant admin consents.
    reader = r.graph(
        "setup-reader",
        "PATCH",
        f"/applications(uniqueName='{prefix}-reader')",
        {"displayName": f"{prefix}-reader"},
        headers={"Prefer": "create-if-missing"},
    ).body
    secret = r.graph("setup-reader-secret", "POST", f"/applications/{reader['id']}/addPassword", {}).body
    r.stand_in.admin(
        "POST",
        f"/tenants/{r.stand_in.home_tenant_id}/consent",
        {"appId": reader["appId"], "roles": {GRAPH_APP_ID: ["Organization.Read.All"]}},
    )
    token = r.client_token(str(reader["appId"]), str(secret["secretText"]))
    r.graph("graph-organization", "GET", "/organization", token=token)
    r.graph(
        "graph-denied",
        "GET",
        "/applications",
        token=token,
        params={"$filter": f"startswith(displayName,'{prefix}')"},
    )


@pytest.fixture(scope="module")
def recorded_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandIn]:
    """A stand-in whose vault is configured as the recorded vaults were."""
    seed = json.loads((REPO / "emulator" / "seed.json").read_text())
    seed["vault"] = {"softDeleteRetentionDays": RECOVERABLE_DAYS, "purgeProtection": False}
    seed_file: Path = tmp_path_factory.mktemp("recorded") / "seed.json"
    seed_file.write_text(json.dumps(seed))
    instance = start_stand_in("--seed", str(seed_file))
    try:
        yield instance
    finally:
        instance.stop()


@pytest.fixture(scope="module")
def observed(recorded_world: StandIn) -> dict[str, Observed]:
    replay = Replay(recorded_world)
    try:
        replay_key_vault(replay)
        replay_graph(replay)
    finally:
        replay.http.close()
    return replay.observed


def at(body: Any, path: str) -> Any:
    """The value at a dotted path such as `value[0].attributes` ("" is the body itself).

    OData's annotations keep their dot: `@odata.context` is one key."""
    node = body
    for part in re.findall(r"@odata\.[^.]+|[^.]+", path):
        match = re.fullmatch(r"(?P<key>[^\[]+)(?:\[(?P<index>\d+)\])?", part)
        assert match is not None, path
        assert isinstance(node, dict) and match["key"] in node, f"no {match['key']!r} at {path!r} in {node!r}"
        node = node[match["key"]]
        if match["index"] is not None:
            assert isinstance(node, list) and len(node) > int(match["index"]), f"no item {part} at {path!r}"
            node = node[int(match["index"])]
    return node


def error_code(body: Any, inner: bool = False) -> str | None:
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return None
    if inner:
        return (error.get("innererror") or {}).get("code")
    code = error.get("code")
    return str(code) if code is not None else None


def params(aspect: str, cases: tuple[Case, ...] = CASES) -> list[Any]:
    marked = []
    for case in cases:
        reason = DIFFERENCES.get((case.name, aspect))
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        marked.append(pytest.param(case, id=case.name, marks=marks))
    return marked


def test_every_difference_names_a_recorded_case_and_aspect() -> None:
    names = {case.name for case in CASES}
    assert {name for name, _ in DIFFERENCES} <= names
    assert {aspect for _, aspect in DIFFERENCES} <= set(ASPECTS)


@pytest.mark.parametrize("case", params("status"))
def test_status_is_the_recorded_status(case: Case, observed: dict[str, Observed]) -> None:
    seen = observed[case.exchange]
    assert seen.status == case.status, f"{case.method} {case.path}: recorded {case.status} in {case.source}"


@pytest.mark.parametrize("case", params("error"))
def test_error_code_is_the_recorded_code(case: Case, observed: dict[str, Observed]) -> None:
    seen = observed[case.exchange]
    assert error_code(seen.body) == case.error, f"recorded in {case.source}"
    assert error_code(seen.body, inner=True) == case.inner_error, f"recorded in {case.source}"


@pytest.mark.parametrize("case", params("shape", tuple(c for c in CASES if c.shapes)))
def test_recorded_keys_are_present(case: Case, observed: dict[str, Observed]) -> None:
    seen = observed[case.exchange]
    for path, recorded in case.shapes.items():
        node = at(seen.body, path)
        assert isinstance(node, dict), f"{path!r} is not an object: {node!r}"
        missing = sorted(recorded - node.keys())
        assert not missing, f"{path or 'body'} lacks {missing}, recorded in {case.source}"
        if case.exact:
            extra = sorted(node.keys() - recorded)
            assert not extra, f"{path or 'body'} has {extra}, which the recording in {case.source} shows absent"


@pytest.mark.parametrize("case", params("values", tuple(c for c in CASES if c.values or c.patterns)))
def test_recorded_values_follow(case: Case, observed: dict[str, Observed]) -> None:
    seen = observed[case.exchange]
    for path, expected in case.values.items():
        if isinstance(expected, str):
            expected = expected.format(**seen.context)
        assert at(seen.body, path) == expected, f"{path or 'body'}, recorded in {case.source}"
    for path, pattern in case.patterns.items():
        regex = pattern.format(**{key: re.escape(value) for key, value in seen.context.items()})
        header = path.removeprefix("header:")
        actual = seen.headers.get(header) if header != path else at(seen.body, path)
        assert isinstance(actual, str) and re.search(regex, actual), f"{path}={actual!r} !~ {regex}"


def test_deleted_secret_is_purged_after_the_retention_period(observed: dict[str, Observed]) -> None:
    # Recorded: deletedDate 1648222149, scheduledPurgeDate 1648826949, a 7-day vault (PY_RECOVER).
    for case in ("kv-delete", "kv-get-deleted"):
        body = observed[case].body
        assert body["scheduledPurgeDate"] - body["deletedDate"] == RECOVERABLE_DAYS * 86400
