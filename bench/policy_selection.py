"""Time method selection against 1,000 policies, most of them regular expressions.

Run: .venv/bin/python bench/policy_selection.py [--policies 1000] [--rounds 2000]
Prints p50, p99 and max in microseconds for a user whom no policy matches (the worst case:
every policy is evaluated) and for one whom the last policy matches, both as a login selects
(through the policy index the server builds when objects load) and as `tapgate policy explain`
does (policy by policy, with an explanation for each).
"""

from __future__ import annotations

import argparse
import statistics
import time

from tapgate.directory.base import DirectoryUser
from tapgate.policy.index import PolicyIndex
from tapgate.policy.matching import compile_value
from tapgate.policy.model import Policy, PushProfileRoute
from tapgate.policy.selection import select_method


def build(count: int) -> tuple[list[Policy], dict[str, PushProfileRoute]]:
    routes = {"bt": PushProfileRoute("bt", ("kurum",), default=True)}
    policies = []
    for index in range(count):
        if index % 10 == 0:
            values: tuple[str, ...] = (f"Departman {index}",)
        elif index % 10 == 1:
            values = (f"Ekip {index}*",)
        elif index % 10 == 9:
            # One policy in ten routes by group, so memberOf values meet a set of their own.
            policies.append(
                Policy(index + 1, "bt", "kurum", "memberOf", (f"/^(vpn|rdp)-grup-{index}$/",))
            )
            continue
        else:
            values = (f"/^(Bilgi|Güvenlik) İşlem {index}( Birimi)?$/",)
        policies.append(Policy(index + 1, "bt", "kurum", "department", values))
    return policies, routes


def measure(
    policies: list[Policy],
    routes: dict[str, PushProfileRoute],
    user: DirectoryUser,
    rounds: int,
    index: PolicyIndex | None,
) -> list[float]:
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        select_method(("push",), user, routes, policies, index)
        samples.append((time.perf_counter() - started) * 1e6)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--policies", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2000)
    args = parser.parse_args()
    policies, routes = build(args.policies)
    # The server compiles every value and the index when objects load, off the event loop.
    started = time.perf_counter()
    for policy in policies:
        for value in policy.values:
            compile_value(value)
    index = PolicyIndex(policies)
    print(f"compiling values and index: {(time.perf_counter() - started) * 1e3:.0f} ms")
    last = max(i for i in range(args.policies) if i % 10 not in (0, 1, 9))
    users = {
        "no policy matches": DirectoryUser(
            "kurum", "1", "ayşe", attributes={"department": ("Finans",)}
        ),
        "last department policy matches": DirectoryUser(
            "kurum", "2", "ismail", attributes={"department": (f"bilgi işlem {last} birimi",)}
        ),
        "30 groups, the last policy matches a group": DirectoryUser(
            "kurum",
            "3",
            "şule",
            attributes={
                "department": ("Finans",),
                "memberof": tuple(
                    f"CN={name},OU=Gruplar,DC=ornek,DC=com,DC=tr"
                    for name in [f"grup-{number}" for number in range(29)]
                    + [f"rdp-grup-{args.policies - 1}"]
                ),
            },
        ),
    }
    for form, form_index in (("login", index), ("explain", None)):
        for label, user in users.items():
            samples = sorted(measure(policies, routes, user, args.rounds, form_index))
            p99 = samples[int(len(samples) * 0.99) - 1]
            print(
                f"{form}, {label}: p50 {statistics.median(samples):.0f} µs, "
                f"p99 {p99:.0f} µs, max {samples[-1]:.0f} µs"
            )


if __name__ == "__main__":
    main()
