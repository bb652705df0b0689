"""Every error tapgate raises on purpose, with the stable string code it maps to.

    TapgateError
    ├── ConfigError            settings file or environment is invalid
    ├── ObjectError            an administrative object (apply, CLI, console) is invalid
    │   └── PolicyValueError   a policy value does not compile (position given)
    ├── NotFoundError          a named object or a transaction does not exist
    ├── DirectoryUnavailable   no server of an auth profile could be reached
    ├── RequestError           a request to an API is malformed (maps to HTTP 4xx)
    └── DeviceAuthError        a device request or answer failed verification

What a caller sees about a failed signature or password reveals nothing; the audit log records
what failed exactly.
"""

from __future__ import annotations


class TapgateError(Exception):
    code = "error"


class ConfigError(TapgateError):
    code = "invalid_config"


class ObjectError(TapgateError):
    code = "invalid_object"


class PolicyValueError(ObjectError):
    """A policy value that does not compile; `position` is the offset of the fault, when known."""

    code = "invalid_policy_value"

    def __init__(self, message: str, value: str, position: int | None = None) -> None:
        super().__init__(message)
        self.value = value
        self.position = position


class NotFoundError(TapgateError):
    code = "not_found"


class DirectoryUnavailable(TapgateError):
    """No server of an auth profile answered; the login fails closed."""

    code = "directory_unavailable"


class RequestError(TapgateError):
    """A malformed request; `status` is the HTTP status to answer with."""

    code = "invalid_request"

    def __init__(self, message: str, code: str = "invalid_request", status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


class DeviceAuthError(TapgateError):
    """A device request or answer that failed verification. The reply is the same for every
    reason, and `detail` goes only to the server's log."""

    code = "device_auth_failed"

    def __init__(self, detail: str) -> None:
        super().__init__("device request rejected")
        self.detail = detail
