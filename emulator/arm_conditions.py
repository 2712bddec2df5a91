"""Role assignment conditions (Azure ABAC), only the subset that delegates role assignment management.

The stand-in parses the form Microsoft Learn documents for delegating role assignments with conditions
(https://learn.microsoft.com/azure/role-based-access-control/delegate-role-assignments-examples,
"Constrain roles", "Constrain roles and principal types", "Constrain roles and specific groups"):

    ((!(ActionMatches{'Microsoft.Authorization/roleAssignments/write'}))
     OR (@Request[Microsoft.Authorization/roleAssignments:RoleDefinitionId] ForAnyOfAnyValues:GuidEquals {...}
         AND @Request[Microsoft.Authorization/roleAssignments:PrincipalType]
             ForAnyOfAnyValues:StringEqualsIgnoreCase {'ServicePrincipal'}))
    AND ((!(ActionMatches{'Microsoft.Authorization/roleAssignments/delete'})) OR (@Resource[...] ...))

Its pieces are combined with AND, OR, `!( )` and parentheses (the condition format,
https://learn.microsoft.com/azure/role-based-access-control/conditions-format). The attributes are the
three that page and conditions-authorization-actions-attributes list for roleAssignments/write (request)
and roleAssignments/delete (resource). Anything else is refused when the condition is stored, so no
test can silently rely on a condition the stand-in did not understand.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass

ROLE_ASSIGNMENT_ACTIONS = (
    "Microsoft.Authorization/roleAssignments/write",
    "Microsoft.Authorization/roleAssignments/delete",
)
# attribute -> the one operator the documented examples use with it
ATTRIBUTE_OPERATORS = {
    "RoleDefinitionId": "GuidEquals",
    "PrincipalId": "GuidEquals",
    "PrincipalType": "StringEqualsIgnoreCase",
}
PRINCIPAL_TYPES = ("User", "Group", "ServicePrincipal", "ForeignGroup", "Device")

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<lp>\() | (?P<rp>\)) | (?P<not>!) | (?P<and>AND\b) | (?P<or>OR\b)
    | (?P<action>ActionMatches\s*\{\s*'(?P<action_value>[^']*)'\s*\})
    | (?P<attr>@(?P<source>Request|Resource)\[Microsoft\.Authorization/roleAssignments:(?P<name>[A-Za-z]+)\])
    | (?P<op>ForAnyOfAnyValues:(?P<operator>[A-Za-z]+))
    | (?P<set>\{(?P<values>[^{}]*)\})
    )""",
    re.VERBOSE,
)

# attribute source ("Request" or "Resource") -> attribute name -> value; a missing value matches nothing.
Attributes = Mapping[str, Mapping[str, str]]
Condition = Callable[[str, Attributes], bool]


class ConditionError(ValueError):
    """A condition outside the documented subset: the stand-in will not store it."""


@dataclass
class _Parser:
    tokens: list[tuple[str, re.Match[str]]]
    at: int = 0

    def peek(self) -> str | None:
        return self.tokens[self.at][0] if self.at < len(self.tokens) else None

    def take(self, kind: str) -> re.Match[str]:
        if self.peek() != kind:
            raise ConditionError(f"expected {kind} at token {self.at}, found {self.peek() or 'the end'}")
        match = self.tokens[self.at][1]
        self.at += 1
        return match

    def expression(self) -> Condition:
        terms = [self.conjunction()]
        while self.peek() == "or":
            self.take("or")
            terms.append(self.conjunction())
        return terms[0] if len(terms) == 1 else (lambda a, attrs: any(t(a, attrs) for t in terms))

    def conjunction(self) -> Condition:
        factors = [self.factor()]
        while self.peek() == "and":
            self.take("and")
            factors.append(self.factor())
        return factors[0] if len(factors) == 1 else (lambda a, attrs: all(f(a, attrs) for f in factors))

    def factor(self) -> Condition:
        kind = self.peek()
        if kind == "not":
            self.take("not")
            self.take("lp")
            inner = self.expression()
            self.take("rp")
            return lambda a, attrs: not inner(a, attrs)
        if kind == "lp":
            self.take("lp")
            inner = self.expression()
            self.take("rp")
            return inner
        if kind == "action":
            wanted = self.take("action")["action_value"]
            if wanted not in ROLE_ASSIGNMENT_ACTIONS:
                raise ConditionError(f"ActionMatches{{'{wanted}'}} is outside the documented subset")
            return lambda a, attrs: a.lower() == wanted.lower()
        if kind == "attr":
            return self.predicate()
        raise ConditionError(f"unexpected {kind or 'end of condition'} at token {self.at}")

    def predicate(self) -> Condition:
        attr = self.take("attr")
        source, name = attr["source"], attr["name"]
        operator = self.take("op")["operator"]
        if ATTRIBUTE_OPERATORS.get(name) != operator:
            raise ConditionError(f"{name} with ForAnyOfAnyValues:{operator} is outside the documented subset")
        values = _values(self.take("set")["values"], quoted=operator == "StringEqualsIgnoreCase")
        wanted = {_guid(v) for v in values} if operator == "GuidEquals" else {v.lower() for v in values}

        def holds(action: str, attrs: Attributes) -> bool:
            value = attrs.get(source, {}).get(name)
            return value is not None and value.lower() in wanted

        return holds


def _values(body: str, quoted: bool) -> list[str]:
    items = [item.strip() for item in body.split(",")]
    if not items or any(not item for item in items):
        raise ConditionError("an empty value in a value set")
    if quoted:
        if any(len(i) < 2 or i[0] != "'" or i[-1] != "'" for i in items):
            raise ConditionError("string values must be quoted with '")
        return [i[1:-1] for i in items]
    return items


def _guid(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError as exc:
        raise ConditionError(f"{value!r} is not a GUID") from exc


def parse(condition: str) -> Condition:
    """The condition as a predicate over (action, attributes), or ConditionError."""
    tokens: list[tuple[str, re.Match[str]]] = []
    at = 0
    text = condition.rstrip()
    while at < len(text):
        match = _TOKEN.match(text, at)
        if match is None or match.end() == at:
            raise ConditionError(f"cannot read the condition at character {at}: {text[at : at + 30]!r}")
        kind = match.lastgroup
        assert kind is not None
        tokens.append((kind, match))
        at = match.end()
    parser = _Parser(tokens)
    result = parser.expression()
    if parser.at != len(tokens):
        raise ConditionError(f"unexpected {parser.peek()} at token {parser.at}")
    return result


def check(condition: str | None, version: str | None) -> None:
    """Refuse (ConditionError) what the stand-in would not evaluate, at the moment it would be stored."""
    if condition is None:
        return
    if version not in (None, "2.0"):
        # "Currently the only accepted value is '2.0'" (RoleAssignmentProperties.conditionVersion, 2022-04-01 spec).
        raise ConditionError(f"conditionVersion {version!r}; the only accepted value is '2.0'")
    parse(condition)


def satisfied(condition: str, action: str, attributes: Attributes) -> bool:
    return parse(condition)(action, attributes)
