"""The reliability suites reuse the function-level fixtures (stand-in, Azurite, a fresh composition root)."""

from tests.functions.conftest import api

__all__ = ["api"]
