"""IMS ES endpoints: https only, shown without credentials, and the GMS/MMS/Extended URLs next to PMS.

Pure: string handling only, imports no I/O.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import urlsplit, urlunsplit

from sync.errors import ConfigError

__all__ = ["display_url", "extended_url", "require_https", "service_urls"]

_PMS_PATH_SEGMENT: Final = "personmanagementservice.svc"


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
    return urlunsplit((parts.scheme, parts.netloc, f"{head}/Extended{last}", parts.query, ""))


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
    if last.lower() != _PMS_PATH_SEGMENT:
        raise ConfigError(
            f"cannot derive the GMS and MMS endpoints from {display_url(pms_url)!r}: its path does not "
            "end in PersonManagementService.svc"
        )

    def sibling(name: str) -> str:
        return urlunsplit((parts.scheme, parts.netloc, f"{head}/{name}", parts.query, ""))

    return sibling("GroupManagementService.svc"), sibling("MembershipManagementService.svc")
