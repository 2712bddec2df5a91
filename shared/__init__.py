"""The tenant onboarding application package, in layers; an import only ever points inward (tests/unit/test_layers.py).

- `entrypoints/`: the Functions blueprints (HTTP API, rotation's timer and Key Vault events, warmup) and
  the operator CLI. They parse input, call one use case and shape its result (`presenters.py`); the
  HTTP plumbing they share is `http_common.py`. Blueprints never import each other.
- `usecases/`: onboarding, status, rotation, offboarding, tenant consent, warm-up, and the steps they
  share (credentials, consent, ownership, replication). Written against ports; they never import an
  adapter or an SDK, and they return values.
- `domain/`: the ports (`ports.py`: the Protocols the use cases need) and the values they pass
  (`model.py`), named errors, the registry (`registry.py`: names and Key Vault tags, built and parsed
  in one place), the catalog and its allow-list, audit events, input rules, retrying.
- `adapters/`: one per Azure service over its Microsoft SDK (Graph, Key Vault, Storage leases), plus
  identity, the TLS transport and telemetry. SDK types stop here.
- `bootstrap/`: `services()`, built on first use by `composition.py`, the composition root (pure wiring, and the
  only place that imports every adapter); `settings.py`: typed settings validated at start.
"""
