"""IMS ES endpoints: https only, shown without credentials, and the GMS/MMS/Extended URLs next to PMS.

Pure: string handling over the kinds' service names (`Kind.service_name`), imports no I/O.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import urlsplit, urlunsplit

from sync.errors import ConfigError
from sync.models.kinds import GROUP, MEMBERSHIP, PERSON, Kind

__all__ = ["display_url", "endpoint", "extended_url", "require_https", "service_urls"]

#: What itslearning's ExtendedPersonManagement endpoint (readAllPersons) prefixes to the PMS one's name.
_EXTENDED: Final = "Extended"


def endpoint(kind: Kind, *, extended: bool = False) -> str:
    """The last segment of the URL of `kind`'s service: `PersonManagementService.svc`, ...; `extended`:
    itslearning's ExtendedPersonManagement beside it (`ExtendedPersonManagementService.svc`)."""
    return f"{_EXTENDED if extended else ''}{kind.service_name}.svc"


def display_url(url: str) -> str:
    """The URL without user info or query, safe to show."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def require_https(url: str, what: str) -> str:
    """`url` itself when it is an https:// URL without user info.

    Raises:
        ConfigError: another scheme, no host, or credentials in the URL (`what` names the setting).
    """
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise ConfigError(
            f"{what} must be an https:// URL (IMS ES carries credentials in every request); "
            f"got {display_url(url)!r}"
        )
    if parts.username or parts.password:
        raise ConfigError(f"{what} must not carry credentials; pass them as username and password")
    return url


def extended_url(url: str) -> str:
    """`.../PersonManagementService.svc` → `.../ExtendedPersonManagementService.svc`."""
    parts = urlsplit(url)
    head, _, last = parts.path.rpartition("/")
    return urlunsplit((parts.scheme, parts.netloc, f"{head}/{_EXTENDED}{last}", parts.query, ""))


def service_urls(pms_url: str) -> tuple[str, str]:
    """The GMS and MMS endpoints next to a PMS endpoint: (`.../GroupManagementService.svc`,
    `.../MembershipManagementService.svc`), replacing the last path segment `PersonManagementService.svc`
    (in any case).

    Raises:
        ConfigError: `pms_url` is not https, carries credentials, or does not end that way (then the
            GMS and MMS endpoints must be given explicitly).
    """
    require_https(pms_url, "the IMS ES URL")
    parts = urlsplit(pms_url)
    head, _, last = parts.path.rpartition("/")
    if last.lower() != endpoint(PERSON).lower():
        raise ConfigError(
            f"cannot derive the GMS and MMS endpoints from {display_url(pms_url)!r}: its path does not "
            f"end in {endpoint(PERSON)}"
        )

    def sibling(name: str) -> str:
        return urlunsplit((parts.scheme, parts.netloc, f"{head}/{name}", parts.query, ""))

    return sibling(endpoint(GROUP)), sibling(endpoint(MEMBERSHIP))
