"""Servers and pytest fixtures for testing code that uses mesiboscript (the ``testing`` extra).

- :class:`EchoServer`: ``ws``, ``wss``, ``sock`` and ``socks`` echo servers on port 0, with
  scriptable misbehaviour (close with a code, drop, delay, greet, refuse the handshake).
- :class:`CertificateAuthority`: a throwaway CA for the TLS servers; clients trust its ``cafile``.
- :func:`parse_script`: the URL-path script syntax the servers understand.
- The pytest plugin (:mod:`mesiboscript.testing.plugin`), loaded automatically by pytest, gives the
  fixtures ``echo_server``, ``echo_server_wss``, ``echo_server_sock``, ``echo_server_socks``,
  ``echo_server_factory``, ``echo_ca`` and ``close_leaked_sessions``.

This package is imported by pytest in every run where mesiboscript is installed (the plugin lives
in it), so it loads ``websockets`` and ``trustme`` only when a server is first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["SCHEMES", "CertificateAuthority", "EchoServer", "parse_script"]

if TYPE_CHECKING:
    from ._echo import SCHEMES, CertificateAuthority, EchoServer, parse_script


def __getattr__(name: str) -> Any:
    # PEP 562: import the servers (and so websockets) on first use, not with the plugin.
    if name in __all__:
        from . import _echo

        return getattr(_echo, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
