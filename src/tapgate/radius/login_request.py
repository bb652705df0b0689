"""The `LoginRequest` that a RADIUS Access-Request starts.

The NAS's own address (the packet's source, NAS-IP-Address) is never the user's address; the
client's `client_ip_attribute` names the attribute that carries it.
"""

from __future__ import annotations

import ipaddress

from tapgate.push.ports import LoginRequest
from tapgate.radius.clients import RadiusClient
from tapgate.radius.codec import RadiusRequest
from tapgate.secret import Secret

# Keywords a user may append to the password after a comma; only these are split off.
PASSWORD_KEYWORDS = frozenset({"push"})


def split_password_keyword(password: str) -> tuple[str, str | None]:
    """Split "password,push" into ("password", "push").

    Only the text after the last comma is examined, and only a known keyword is removed, so a
    password that contains commas ("Vpn,Parola-1") is kept whole.
    """
    head, comma, tail = password.rpartition(",")
    keyword = tail.strip().lower()
    if comma and keyword in PASSWORD_KEYWORDS:
        return head, keyword
    return password, None


def client_ip_for(client: RadiusClient, request: RadiusRequest) -> str | None:
    """Return the end user's address from the attribute the client is set to use.

    A value that is not an IP address (a telephone number in Calling-Station-Id, for example)
    gives None, because the login service shows and geolocates the value as an address.
    """
    if client.client_ip_attribute == "Framed-IP-Address":
        value = request.framed_ip_address
    else:
        value = request.calling_station_id
    if not value:
        return None
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def to_login_request(
    client: RadiusClient, request: RadiusRequest, password: Secret
) -> tuple[LoginRequest, str | None]:
    """Build the login for a first Access-Request; returns it with the password keyword, if any.

    The caller checks that the request has a User-Name and a PAP password.
    """
    typed, keyword = split_password_keyword(password.reveal())
    login_request = LoginRequest(
        application=client.application,
        username=request.user_name or "",
        password=Secret(typed),
        client_ip=client_ip_for(client, request),
        source=f"radius:{client.name}",
        language=client.language,
        # Retransmissions repeat the Identifier and the Request Authenticator (RFC 5080).
        request_key=f"radius:{client.name}:{request.identifier}:{request.authenticator.hex()}",
    )
    return login_request, keyword
