"""The contract suite: one set of port-level cases run against the fakes (tests/fakes) and against the real
adapters on the stand-in, so that the fakes the unit tests trust behave as the adapters do."""
