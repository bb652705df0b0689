"""Re-export of `tapgate.folding.fold`, the comparison form policies and usernames share."""

from tapgate.folding import fold

__all__ = ["fold"]
