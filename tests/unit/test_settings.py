"""Process settings: the YAML file, environment overrides and their validation."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

import pytest

from tapgate.errors import ConfigError
from tapgate.settings import HostPort, Settings, load_settings


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "tapgate.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def embedded() -> Settings:
    return load_settings(None, env={})


def test_embedded_flag() -> None:
    assert embedded().embedded is True


def test_embedded_source() -> None:
    assert embedded().source == "(embedded default)"


def test_embedded_listen() -> None:
    assert embedded().listen == HostPort("127.0.0.1", 8080)


def test_embedded_public_url() -> None:
    assert embedded().public_url == "http://127.0.0.1:8080"


def test_embedded_warns_plain_http() -> None:
    assert len(embedded().warnings) == 1


def test_embedded_database_url() -> None:
    assert embedded().database_url == "sqlite:///./tapgate-data/tapgate.db"


def test_embedded_key_file() -> None:
    assert embedded().key_file == Path("tapgate-data/secret.key")


def test_embedded_radius_off() -> None:
    assert embedded().radius_listen is None


def test_embedded_no_trusted_proxies() -> None:
    assert embedded().trusted_proxies == ()


ENV_OVERRIDES = [
    ("TAPGATE_LISTEN", "127.0.0.1:9090", "listen", HostPort("127.0.0.1", 9090)),
    ("TAPGATE_PUBLIC_URL", "https://mfa.ornek.com.tr", "public_url", "https://mfa.ornek.com.tr"),
    ("TAPGATE_PUBLIC_URL", "https://mfa.ornek.com.tr/", "public_url", "https://mfa.ornek.com.tr"),
    (
        "TAPGATE_DATABASE_URL",
        "postgresql://tapgate@db.ornek.com.tr/tapgate",
        "database_url",
        "postgresql://tapgate@db.ornek.com.tr/tapgate",
    ),
    ("TAPGATE_RADIUS_LISTEN", "127.0.0.1:1812", "radius_listen", HostPort("127.0.0.1", 1812)),
    ("TAPGATE_KEY_FILE", "/etc/tapgate/gizli.key", "key_file", Path("/etc/tapgate/gizli.key")),
]


@pytest.mark.parametrize(("variable", "value", "attribute", "expected"), ENV_OVERRIDES)
def test_env_override(variable: str, value: str, attribute: str, expected: object) -> None:
    settings = load_settings(None, env={variable: value})
    assert getattr(settings, attribute) == expected


@pytest.mark.parametrize(("variable", "value", "attribute", "expected"), ENV_OVERRIDES)
def test_env_overrides_file(
    tmp_path: Path, variable: str, value: str, attribute: str, expected: object
) -> None:
    path = write(
        tmp_path,
        "server:\n  listen: 127.0.0.1:7000\n  public_url: https://eski.ornek.com.tr\n"
        "database:\n  url: sqlite:///eski.db\n"
        "radius:\n  listen: 127.0.0.1:1645\n"
        "secrets:\n  key_file: eski.key\n",
    )
    settings = load_settings(path, env={variable: value})
    assert getattr(settings, attribute) == expected


def test_empty_env_variable_ignored() -> None:
    assert load_settings(None, env={"TAPGATE_LISTEN": ""}).listen == HostPort("127.0.0.1", 8080)


def test_file_values_read(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "server:\n  listen: 127.0.0.1:8443\n  public_url: https://mfa.ornek.com.tr\n"
        "database:\n  url: sqlite:////var/lib/tapgate/tapgate.db\n",
    )
    settings = load_settings(path, env={})
    assert (settings.listen, settings.public_url, settings.database_url) == (
        HostPort("127.0.0.1", 8443),
        "https://mfa.ornek.com.tr",
        "sqlite:////var/lib/tapgate/tapgate.db",
    )


def test_file_not_embedded(tmp_path: Path) -> None:
    assert load_settings(write(tmp_path, "server: {}\n"), env={}).embedded is False


def test_empty_file_uses_defaults(tmp_path: Path) -> None:
    assert load_settings(write(tmp_path, ""), env={}).listen == HostPort("127.0.0.1", 8080)


def test_config_from_env_variable(tmp_path: Path) -> None:
    path = write(tmp_path, "server:\n  listen: 127.0.0.1:8181\n")
    settings = load_settings(None, env={"TAPGATE_CONFIG": path})
    assert settings.listen == HostPort("127.0.0.1", 8181)


def test_missing_file_names_path(tmp_path: Path) -> None:
    path = str(tmp_path / "yok.yaml")
    with pytest.raises(ConfigError, match=re.escape(path)):
        load_settings(path, env={})


def test_unknown_section_named(tmp_path: Path) -> None:
    path = write(tmp_path, "ldap:\n  url: ldaps://dc1.ornek.com.tr\n")
    with pytest.raises(ConfigError, match="unknown section 'ldap'"):
        load_settings(path, env={})


def test_unknown_key_named(tmp_path: Path) -> None:
    path = write(tmp_path, "server:\n  port: 8080\n")
    with pytest.raises(ConfigError, match=re.escape("unknown key server.port")):
        load_settings(path, env={})


def test_section_not_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, "server: 127.0.0.1:8080\n")
    with pytest.raises(ConfigError, match="section 'server' must be a mapping"):
        load_settings(path, env={})


def test_file_not_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, "- server\n- database\n")
    with pytest.raises(ConfigError, match="must be a mapping of sections"):
        load_settings(path, env={})


@pytest.mark.parametrize("text", ["server: [\n", "server:\n  listen: 'a\n", "\tserver: {}\n"])
def test_invalid_yaml_rejected(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(path, env={})


@pytest.mark.parametrize(
    "listen",
    [
        "8080",
        "127.0.0.1",
        "127.0.0.1:",
        ":8080",
        "127.0.0.1:http",
        "127.0.0.1:٨٠٨٠",
        "127.0.0.1:-1",
    ],
)
def test_invalid_listen_rejected(listen: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"server.listen: invalid address {listen!r}")):
        load_settings(None, env={"TAPGATE_LISTEN": listen})


@pytest.mark.parametrize("listen", ["127.0.0.1:0", "127.0.0.1:65536", "localhost:99999"])
def test_listen_port_out_of_range(listen: str) -> None:
    port = listen.rpartition(":")[2]
    with pytest.raises(ConfigError, match=re.escape(f"invalid port {port} in {listen!r}")):
        load_settings(None, env={"TAPGATE_LISTEN": listen})


def test_invalid_radius_listen_named() -> None:
    with pytest.raises(ConfigError, match="radius.listen"):
        load_settings(None, env={"TAPGATE_RADIUS_LISTEN": "1812"})


def test_bracketed_ipv6_listen() -> None:
    settings = load_settings(
        None, env={"TAPGATE_LISTEN": "[::1]:8080", "TAPGATE_PUBLIC_URL": "http://[::1]:8080"}
    )
    assert settings.listen == HostPort("::1", 8080)


def test_ipv6_listen_default_public_url() -> None:
    settings = load_settings(None, env={"TAPGATE_LISTEN": "[::1]:8080"})
    assert settings.public_url == "http://[::1]:8080"


@pytest.mark.parametrize(
    "url",
    [
        "http://mfa.ornek.com.tr",
        "http://85.105.1.1:8080",
        "http://10.0.0.5",
        "http://127.0.0.1.ornek.com.tr",
    ],
)
def test_http_public_url_rejected(url: str) -> None:
    with pytest.raises(ConfigError, match="uses http on a non-loopback host"):
        load_settings(None, env={"TAPGATE_PUBLIC_URL": url})


@pytest.mark.parametrize(
    "url", ["ftp://mfa.ornek.com.tr", "mfa.ornek.com.tr", "https://", "https:///yol"]
)
def test_invalid_public_url_rejected(url: str) -> None:
    with pytest.raises(ConfigError, match="server.public_url: invalid URL"):
        load_settings(None, env={"TAPGATE_PUBLIC_URL": url})


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8080", "http://127.8.9.10", "http://localhost:8080", "http://[::1]:8080"],
)
def test_http_loopback_accepted(url: str) -> None:
    assert load_settings(None, env={"TAPGATE_PUBLIC_URL": url}).public_url == url


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8080", "http://127.8.9.10", "http://localhost:8080", "http://[::1]:8080"],
)
def test_http_loopback_warns(url: str) -> None:
    warnings = load_settings(None, env={"TAPGATE_PUBLIC_URL": url}).warnings
    assert [url in warning for warning in warnings] == [True]


def test_https_public_url_no_warning() -> None:
    settings = load_settings(None, env={"TAPGATE_PUBLIC_URL": "https://mfa.ornek.com.tr"})
    assert settings.warnings == ()


def test_trusted_proxies_parsed(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "server:\n  trusted_proxies: [10.0.0.0/8, 192.168.1.10, '2001:db8::/32', 172.16.5.4/12]\n",
    )
    assert load_settings(path, env={}).trusted_proxies == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("192.168.1.10/32"),
        ipaddress.ip_network("2001:db8::/32"),
        ipaddress.ip_network("172.16.0.0/12"),
    )


def test_trusted_proxies_empty(tmp_path: Path) -> None:
    path = write(tmp_path, "server:\n  trusted_proxies:\n")
    assert load_settings(path, env={}).trusted_proxies == ()


@pytest.mark.parametrize("entry", ["vekil.ornek.com.tr", "10.0.0.0/33", "300.1.1.1"])
def test_trusted_proxy_invalid_named(tmp_path: Path, entry: str) -> None:
    path = write(tmp_path, f"server:\n  trusted_proxies: ['{entry}']\n")
    with pytest.raises(
        ConfigError, match=re.escape(f"server.trusted_proxies: invalid address {entry!r}")
    ):
        load_settings(path, env={})


def test_city_database_path(tmp_path: Path) -> None:
    path = write(tmp_path, "geoip:\n  city_database: /var/lib/GeoLite2-City.mmdb\n")
    assert load_settings(path, env={}).city_database == Path("/var/lib/GeoLite2-City.mmdb")
