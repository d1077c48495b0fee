"""Every exception zeep, requests, urllib3, lxml or the socket layer can raise, mapped to `sync.errors`.

`translate_exception` is the one place foreign exceptions become ours (the hierarchy is drawn in
`sync/errors.py`); `FOREIGN` is what a call catches to hand it over. Messages name the operation and
the endpoint, never a credential. Imports zeep, requests and urllib3 for their exception classes only.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import Any, Final, TypeAlias

import requests
import urllib3.exceptions
import zeep.exceptions
from lxml import etree

from sync.errors import (
    AuthenticationError,
    CertificateError,
    ConfigError,
    ProtocolError,
    RejectedError,
    SyncError,
    TransientError,
)
from sync.ims.urls import display_url

__all__ = ["FOREIGN", "TRANSIENT_HTTP", "fault", "status_error", "translate_exception"]

TRANSIENT_HTTP: Final = frozenset({408, 429, 502, 503, 504})
_AUTH_FAULTS: Final = frozenset({"InvalidSecurity", "FailedAuthentication"})
_CERTIFICATE: Final = (
    "the server's TLS certificate did not verify; if the service uses a private or self-signed CA, "
    "pass its certificate with --ca-bundle"
)

# Everything a call can raise that is not ours: translated by `translate_exception`.
FOREIGN: Final = (
    zeep.exceptions.Error,
    requests.exceptions.RequestException,
    urllib3.exceptions.HTTPError,
    OSError,
    etree.LxmlError,
    ValueError,
)

#: Makes our error from the foreign exception and the "<operation> to <endpoint>" text.
_Translate: TypeAlias = Callable[[Any, str], SyncError]


def status_error(status: int) -> zeep.exceptions.TransportError:
    """An HTTP status that is no SOAP answer, raised for `translate_exception` to judge."""
    return zeep.exceptions.TransportError(f"HTTP {status}", status_code=status)  # type: ignore[no-untyped-call]


def fault(message: str, code: str) -> zeep.exceptions.Fault:
    """A SOAP 1.1 fault of the answer, raised for `translate_exception` to judge."""
    return zeep.exceptions.Fault(message, code=code or None)  # type: ignore[no-untyped-call]


def _is_certificate_failure(exc: BaseException) -> bool:
    """True when the TLS handshake failed because the server's certificate did not verify."""
    seen: set[int] = set()
    todo: list[object] = [exc]
    while todo:
        item = todo.pop()
        if not isinstance(item, BaseException) or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(item):
            return True
        # requests wraps urllib3's MaxRetryError, whose `reason` holds the ssl error.
        todo.extend((item.__cause__, item.__context__, getattr(item, "reason", None), *item.args))
    return False


def _http_status_error(status: int, where: str) -> SyncError:
    if status in (401, 403):
        return AuthenticationError(f"{where}: HTTP {status}, the service refused the credentials")
    if status in TRANSIENT_HTTP or status >= 500:
        return TransientError(f"{where}: HTTP {status} without a SOAP answer")
    if 300 <= status < 400:
        return ProtocolError(f"{where}: unexpected redirect (HTTP {status}); check the service URL")
    if status == 200:
        return ProtocolError(f"{where}: the answer is not a SOAP message")
    return RejectedError(f"{where}: HTTP {status}, the service refused the request")


def _soap_fault(exc: zeep.exceptions.Fault, where: str) -> SyncError:
    code = (exc.code or "").rpartition(":")[2]
    text = f"{where}: SOAP fault {exc.code or '(no code)'}: {exc.message}"
    if code in _AUTH_FAULTS:
        return AuthenticationError(text)
    if code == "Server":
        # SOAP 1.1: the server failed, not our message. itslearning: retry server errors.
        return TransientError(text)
    return RejectedError(text)


def _ssl_error(exc: requests.exceptions.SSLError, where: str) -> SyncError:
    if _is_certificate_failure(exc):
        return CertificateError(f"{where}: {_CERTIFICATE}")
    return TransientError(f"{where}: TLS handshake failed")


def _http_error(exc: requests.exceptions.HTTPError, where: str) -> SyncError:
    return _http_status_error(exc.response.status_code if exc.response is not None else 0, where)


def _says(error: type[SyncError], text: str) -> _Translate:
    """`error("<where>: text")`; `{name}` in `text` is the exception's class name, `{message}` zeep's."""

    def translate(exc: Any, where: str) -> SyncError:
        return error(f"{where}: " + text.format(name=type(exc).__name__, message=getattr(exc, "message", "")))

    return translate


_e = zeep.exceptions
_r = requests.exceptions

#: The first row whose classes the exception is an instance of translates it: the order matters
#: (requests' SSLError and ConnectTimeout are ConnectionErrors; zeep's Error is the base of the others).
_RULES: Final[tuple[tuple[type[BaseException] | tuple[type[BaseException], ...], _Translate], ...]] = (
    # --- zeep
    (_e.Fault, _soap_fault),
    (_e.TransportError, lambda exc, where: _http_status_error(exc.status_code, where)),
    (
        (_e.DTDForbidden, _e.EntitiesForbidden),
        _says(ProtocolError, "the answer declares a DTD or entities; refused"),
    ),
    (
        _e.ExternalReferenceForbidden,
        _says(ProtocolError, "the answer refers to an external document; refused"),
    ),
    ((_e.XMLSyntaxError, _e.XMLParseError), _says(ProtocolError, "the answer is not well-formed XML")),
    (_e.UnexpectedElementError, _says(ProtocolError, "the answer does not match the WSDL")),
    (_e.ValidationError, _says(RejectedError, "the request does not fit the schema: {message}")),
    (_e.WsdlSyntaxError, _says(ConfigError, "the WSDL is unusable: {message}")),
    # LookupError, NamespaceError, IncompleteMessage/Operation, SignatureVerificationFailed, ...
    (_e.Error, _says(ProtocolError, "{name}: {message}")),
    # --- requests
    (_r.SSLError, _ssl_error),
    (_r.Timeout, _says(TransientError, "timed out ({name})")),
    (_r.ProxyError, _says(TransientError, "the proxy failed")),
    (_r.ConnectionError, _says(TransientError, "connection failed or dropped")),
    (
        (_r.ChunkedEncodingError, _r.ContentDecodingError),
        _says(TransientError, "the answer was cut off or garbled in transit"),
    ),
    (_r.HTTPError, _http_error),
    (_r.RetryError, _says(TransientError, "gave up after retries")),
    (
        (_r.URLRequired, _r.MissingSchema, _r.InvalidSchema, _r.InvalidURL, _r.InvalidHeader),
        _says(ConfigError, "invalid URL or header ({name})"),
    ),
    (_r.TooManyRedirects, _says(ProtocolError, "too many redirects")),
    ((_r.InvalidJSONError, _r.StreamConsumedError, _r.UnrewindableBodyError), _says(ProtocolError, "{name}")),
    (_r.RequestException, _says(TransientError, "request failed ({name})")),
    # --- below requests: urllib3 and the socket layer, in case something slips through
    (ssl.SSLCertVerificationError, _says(CertificateError, _CERTIFICATE)),
    ((urllib3.exceptions.HTTPError, OSError), _says(TransientError, "connection failed ({name})")),
    (etree.LxmlError, _says(ProtocolError, "the answer is not usable XML")),
)


def translate_exception(exc: BaseException, *, operation: str, endpoint: str) -> SyncError:
    """Map an exception raised by zeep, requests, urllib3 or the socket layer to a `sync.errors` class.

    The message names the operation and endpoint, never a credential. The caller raises the result
    `from exc`.

    Args:
        exc: What a call raised.
        operation: The IMS ES operation (e.g. "createPerson").
        endpoint: The URL that was called (user info is dropped before it is shown).
    """
    where = f"{operation} to {display_url(endpoint)}"
    if isinstance(exc, SyncError):
        return exc
    for classes, translate in _RULES:
        if isinstance(exc, classes):
            return translate(exc, where)
    return ProtocolError(f"{where}: unexpected {type(exc).__name__}")
