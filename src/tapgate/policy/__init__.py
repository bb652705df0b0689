"""Policy matching and method selection: pure code, no I/O.

`select_method` picks the push profile for a user, `explain` explains the decision,
`validate_policy` checks a policy before it is saved, and `fold` is the case-insensitive
comparison form.
"""

from tapgate.policy.folding import fold
from tapgate.policy.matching import MAX_VALUE_LENGTH, ValueMatcher, compile_value, match_policy
from tapgate.policy.model import Evaluation, Policy, PushProfileRoute, Selection
from tapgate.policy.selection import (
    PUSH_METHOD,
    auth_profile_order,
    explain,
    select_method,
    selection_to_dict,
)
from tapgate.policy.validation import (
    POLICY_ATTRIBUTES,
    canonical_attribute,
    validate_policies,
    validate_policy,
)

__all__ = [
    "MAX_VALUE_LENGTH",
    "POLICY_ATTRIBUTES",
    "PUSH_METHOD",
    "Evaluation",
    "Policy",
    "PushProfileRoute",
    "Selection",
    "ValueMatcher",
    "auth_profile_order",
    "canonical_attribute",
    "compile_value",
    "explain",
    "fold",
    "match_policy",
    "select_method",
    "selection_to_dict",
    "validate_policies",
    "validate_policy",
]
