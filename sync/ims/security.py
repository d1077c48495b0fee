"""WS-Security for IMS ES: WCF's `wsse:Security` header (Timestamp + UsernameToken, PasswordText).

The password lives in a `_Secret` that never shows itself in a repr, a log line or a traceback. Imports
lxml only; sends nothing.
"""

from __future__ import annotations

import base64
import os
import uuid
from datetime import UTC, datetime, timedelta
from typing import Final

from lxml import etree

from sync.ims.namespaces import SOAP_ENV, WSSE, WSU

__all__ = ["BASE64_BINARY", "PASSWORD_TEXT", "WSSE", "WSU", "UsernameTokenSecurity"]

# The token type's URI, not a password.
PASSWORD_TEXT: Final = (
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordText"  # noqa: S105
)
BASE64_BINARY: Final = (
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary"
)
_TOKEN_LIFETIME: Final = timedelta(minutes=5)


class _Secret:
    """A string that never shows itself in a repr, a log line or a traceback's locals."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself, for the one place that must send it."""
        return self._value

    def __repr__(self) -> str:
        return "<secret>"


def _xml_time(moment: datetime) -> str:
    """UTC with milliseconds and a Z, the form WCF writes and expects."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class UsernameTokenSecurity:
    """A zeep `wsse` object: adds WCF's `wsse:Security` header (Timestamp + UsernameToken, PasswordText).

    Each `apply` builds a fresh header (new nonce, new times, new ids), so one instance serves many
    threads. `verify` accepts the answer's Security header (a Timestamp, mustUnderstand="1") as is.
    """

    __slots__ = ("_password", "_username")

    def __init__(self, username: str, password: str) -> None:
        self._username = username
        self._password = _Secret(password)

    def __repr__(self) -> str:
        return f"UsernameTokenSecurity(username={self._username!r})"

    def apply(
        self, envelope: etree._Element, headers: dict[str, str]
    ) -> tuple[etree._Element, dict[str, str]]:
        """Insert the Security header as the first SOAP header block; return the envelope and headers."""
        insert_header(envelope, self.security_element())
        return envelope, headers

    def verify(self, envelope: etree._Element) -> None:
        """Accept the answer: HTTPS already authenticates the server, and WCF signs nothing here."""

    def security_element(self, now: datetime | None = None) -> etree._Element:
        """A new `wsse:Security` element valid from `now` (default: the current time) for five minutes."""
        created = now or datetime.now(UTC)
        token_id = uuid.uuid4().hex
        security = etree.Element(f"{{{WSSE}}}Security", nsmap={"wsse": WSSE, "wsu": WSU})
        security.set(f"{{{SOAP_ENV}}}mustUnderstand", "1")
        timestamp = etree.SubElement(security, f"{{{WSU}}}Timestamp")
        timestamp.set(f"{{{WSU}}}Id", f"TS-{token_id}")
        etree.SubElement(timestamp, f"{{{WSU}}}Created").text = _xml_time(created)
        etree.SubElement(timestamp, f"{{{WSU}}}Expires").text = _xml_time(created + _TOKEN_LIFETIME)
        token = etree.SubElement(security, f"{{{WSSE}}}UsernameToken")
        token.set(f"{{{WSU}}}Id", f"UsernameToken-{token_id}")
        etree.SubElement(token, f"{{{WSSE}}}Username").text = self._username
        password = etree.SubElement(token, f"{{{WSSE}}}Password", Type=PASSWORD_TEXT)
        password.text = self._password.reveal()
        nonce = etree.SubElement(token, f"{{{WSSE}}}Nonce", EncodingType=BASE64_BINARY)
        nonce.text = base64.b64encode(os.urandom(16)).decode("ascii")
        etree.SubElement(token, f"{{{WSU}}}Created").text = _xml_time(created)
        return security


def insert_header(envelope: etree._Element, block: etree._Element) -> None:
    """Insert `block` as the first SOAP header block of `envelope` (adding the Header when it has none)."""
    header = envelope.find(f"{{{SOAP_ENV}}}Header")
    if header is None:
        header = etree.Element(f"{{{SOAP_ENV}}}Header")
        envelope.insert(0, header)
    header.insert(0, block)
