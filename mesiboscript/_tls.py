"""TLS contexts. The only module that imports certifi."""

from __future__ import annotations

import ssl
import warnings
from typing import Optional

import certifi

__all__ = ["make_context"]

_default_context: Optional[ssl.SSLContext] = None


def make_context(
    ssl_context: Optional[ssl.SSLContext] = None,
    cafile: Optional[str] = None,
    verify: bool = True,
) -> ssl.SSLContext:
    """The context for a client connection.

    Default: certifi's CA bundle with certificate and hostname verification (one shared context,
    since building one parses the whole bundle). ``cafile`` trusts a private CA instead;
    ``ssl_context`` is used as given. ``verify=False`` turns every check off and warns.

    Raises:
        ValueError: ``ssl_context`` with ``cafile``, or with ``verify=False``: a context of the
            caller's own is never weakened, nor silently swapped for one without its client
            certificate or settings (turn its checks off in the context itself instead).
    """
    global _default_context
    if ssl_context is not None and cafile is not None:
        raise ValueError("pass either ssl_context or cafile, not both")
    if ssl_context is not None and not verify:
        raise ValueError(
            "verify_host = False does not apply to your own ssl_context: set check_hostname = "
            "False and verify_mode = ssl.CERT_NONE on it instead, or drop ssl_context"
        )
    if ssl_context is not None:
        context = ssl_context
    elif cafile is not None:
        context = ssl.create_default_context(cafile=cafile)
    else:
        if verify and _default_context is not None:
            return _default_context
        context = ssl.create_default_context(cafile=certifi.where())
        if verify:
            _default_context = context
    if not verify:
        warnings.warn(
            "TLS certificate and hostname verification is turned off: the connection can be "
            "intercepted by anyone on the path",
            UserWarning,
            stacklevel=3,
        )
        # Always a context of our own here (the shared one is kept for verify=True, and the
        # caller's own ssl_context with verify=False raised above): weakening it is safe.
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def proxy_context(
    tls: Optional[ssl.SSLContext],
    ssl_context: Optional[ssl.SSLContext] = None,
    cafile: Optional[str] = None,
) -> Optional[ssl.SSLContext]:
    """The context for TLS to an ``https://`` proxy: it trusts what the server's TLS trusts (a
    private CA too). ``tls`` is the server's context when the URL is secure; otherwise one is made
    from ``ssl_context``/``cafile`` when given. ``None``: the transport's default (certifi)."""
    if tls is not None:
        return tls
    if ssl_context is not None or cafile:
        return make_context(ssl_context, cafile)
    return None
