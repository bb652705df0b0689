"""Plain values the policy core works on: no I/O, no database rows."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Policy:
    """One ordered rule; `position` is 1-based priority."""

    position: int
    push_profile: str
    auth_profile: str
    attribute: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class PushProfileRoute:
    """What selection needs of a push profile."""

    name: str
    fallback_auth_profiles: tuple[str, ...]
    default: bool = False


@dataclass(frozen=True)
class Evaluation:
    """Why one policy did or did not match a user."""

    position: int
    push_profile: str
    matched: bool
    explanation: str


@dataclass(frozen=True)
class Selection:
    """The outcome of method selection for one user and application."""

    method: str | None
    push_profile: str | None
    policy: int | None
    evaluations: tuple[Evaluation, ...]
    # "policy N", "no policies", "push profile NAME has no policies", or why no method admitted
    # the user.
    decided_by: str
