"""Call counting and failure switches, the base every fake inherits.

Every fake counts its calls (`calls["add_password"]`, and `log` in order) and can be told to fail:

- `fail_next(operation, error, times=1, when=None)` raises `error` from the next matching
  call(s) of that method *before* it does anything (a refused or never-sent request);
- `fail_after(operation, error, times=1, when=None)` lets the call do its work and then raises
  (a lost response: the write happened, the caller does not know it).

`when` narrows a switch to calls whose arguments match, e.g. only the vault write of the
client secret: `when=lambda call: str(call["name"]).endswith("-client-secret")`.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

Call = Mapping[str, object]
When = Callable[[Call], bool]


@dataclass
class _Rule:
    error: Exception
    times: int
    when: When | None


class FaultSwitches:
    """Call counting and fail-before / fail-after switches, shared by every fake."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.log: list[tuple[str, Call]] = []  # every call, in order, with its arguments
        self._before: dict[str, list[_Rule]] = defaultdict(list)
        self._after: dict[str, list[_Rule]] = defaultdict(list)

    def fail_next(self, operation: str, error: Exception, times: int = 1, when: When | None = None) -> None:
        """The next `times` matching calls of `operation` raise `error` without doing anything."""
        self._known(operation)
        self._before[operation].append(_Rule(error, times, when))

    def fail_after(self, operation: str, error: Exception, times: int = 1, when: When | None = None) -> None:
        """The next `times` matching calls of `operation` do their work, then raise `error`."""
        self._known(operation)
        self._after[operation].append(_Rule(error, times, when))

    def unfired(self) -> list[str]:
        """Switches that have not fired yet (a test whose fault never fired tests nothing)."""
        return [
            f"{kind} {operation}"
            for kind, rules in (("fail_next", self._before), ("fail_after", self._after))
            for operation, pending in rules.items()
            for rule in pending
            if rule.times > 0
        ]

    def calls_of(self, operation: str) -> list[Call]:
        """The arguments of every call of `operation`, in order."""
        return [call for name, call in self.log if name == operation]

    def clear_faults(self) -> None:
        self._before.clear()
        self._after.clear()

    def _known(self, operation: str) -> None:
        if operation.startswith("_") or not callable(getattr(self, operation, None)):
            raise AttributeError(f"{type(self).__name__} has no operation {operation!r}")

    def _enter(self, operation: str, **call: object) -> None:
        self.calls[operation] += 1
        self.log.append((operation, call))
        self._fire(self._before, operation, call)

    def _leave(self, operation: str, **call: object) -> None:
        self._fire(self._after, operation, call)

    @staticmethod
    def _fire(rules: dict[str, list[_Rule]], operation: str, call: Call) -> None:
        for rule in rules.get(operation, ()):
            if rule.times > 0 and (rule.when is None or rule.when(call)):
                rule.times -= 1
                raise rule.error
