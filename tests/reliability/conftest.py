"""The reliability suites reuse the function-level fixtures (stand-in, Azurite, a fresh composition root)."""

from tests.functions.conftest import api
from tests.functions.test_rotation import rotating

__all__ = ["api", "rotating"]
