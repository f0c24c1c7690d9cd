"""Roles, the scopes they grant, and clearance against classification (docs/access.md).

A request is allowed an action when its account's role grants the action's scope and its
token was issued with that scope (a token never carries more than its role: a role changed
later narrows every token at once). Clearance is a separate axis: an account sees the
datasets classified at its clearance and below, and nothing of the others, not even that
they exist."""

from __future__ import annotations

from obslink.errors import ConfigError
from obslink.server.catalog.datasets import CLASSIFICATIONS, check_classification

# what each scope lets a request do
SCOPES = {
    "catalog:read": "stations, datasets, observations, provenance, the log, products",
    "catalog:write": "change a dataset's title, description or licence",
    "monitor:read": "the monitoring API, the dashboard, alarms and /metrics",
    "monitor:write": "acknowledge alarms",
    "admin": "accounts, tokens, the address blacklist, dataset classification",
    "audit:read": "the audit log, its verification and outflow reports",
}
ROLES = {
    "administrator": tuple(SCOPES),
    "operator": ("catalog:read", "catalog:write", "monitor:read", "monitor:write"),
    "data-user": ("catalog:read",),
    "auditor": ("audit:read",),
}
KINDS = ("personal", "service")  # a person's account, or one per application system
STATUSES = ("active", "suspended", "revoked")


def check_role(role: str) -> str:
    if role not in ROLES:
        raise ConfigError(f"role {role!r} is not one of {', '.join(ROLES)}")
    return role


def check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise ConfigError(f"account kind {kind!r} is not one of {', '.join(KINDS)}")
    return kind


def check_scopes(scopes: tuple[str, ...], role: str) -> tuple[str, ...]:
    """The scopes a new token of a ``role`` account may be given (all of the role's when
    none are asked for)."""
    if not scopes:
        return ROLES[role]
    for scope in scopes:
        if scope not in SCOPES:
            raise ConfigError(f"scope {scope!r} is not one of {', '.join(SCOPES)}")
        if scope not in ROLES[role]:
            raise ConfigError(f"scope {scope!r} is not granted to the role {role} (it has "
                              f"{', '.join(ROLES[role])}); change the account's role first")
    return tuple(dict.fromkeys(scopes))


def cleared_levels(clearance: str) -> tuple[str, ...]:
    """The classification levels an account of ``clearance`` may see: its own and below."""
    check_classification(clearance)
    return CLASSIFICATIONS[:CLASSIFICATIONS.index(clearance) + 1]
