"""``stagetune dashboard``: optuna-dashboard on a search's storage."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import TYPE_CHECKING

from stagetune.search._errors import SearchError

if TYPE_CHECKING:
    from optuna.artifacts._protocol import ArtifactStore
    from optuna.storages import BaseStorage

#: Addresses that only this machine can reach; any other needs a warning.
LOOPBACK_HOSTS: tuple[str, ...] = ("127.0.0.1", "localhost", "::1")


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only.

    Example:
        >>> is_loopback("127.0.0.1"), is_loopback("0.0.0.0")
        (True, False)
    """
    return host in LOOPBACK_HOSTS or host.startswith("127.")


def serve_dashboard(
    storage: BaseStorage,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    on_ready: Callable[[str], None] | None = None,
    artifact_store: ArtifactStore | None = None,
) -> None:
    """Serve optuna-dashboard for ``storage`` until interrupted (Ctrl-C).

    The same single-threaded ``wsgiref`` server as ``optuna-dashboard`` itself, but
    bound here so that ``port=0`` takes a free port and ``on_ready`` gets the real URL.

    Args:
        storage: The storage to browse; open it with ``open_storage(..., read_only=True)``
            so that no table is created.
        host: Address to bind; the dashboard has no authentication, so keep loopback
            unless the network is trusted.
        port: Port to bind; 0 picks a free one.
        on_ready: Called with the dashboard's URL once the server listens.
        artifact_store: The search's artifact store: the dashboard lists each trial's
            artifacts (the final run's ``model.pt``) and serves them for download.

    Raises:
        SearchError: The address cannot be bound (port in use, not an address here).
    """
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    import optuna_dashboard

    class Server(ThreadingMixIn, WSGIServer):
        """A thread per connection (as ``optuna-dashboard``'s own server): a browser's
        idle pre-opened socket does not hold up the page's other requests."""

        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        daemon_threads = True

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            """No line per request (optuna-dashboard's own default prints them)."""

    app = optuna_dashboard.wsgi(storage, artifact_store=artifact_store)
    try:
        server = make_server(host, port, app, server_class=Server, handler_class=QuietHandler)
    except OSError as error:
        raise SearchError(
            f"Cannot serve the dashboard on {host}:{port}: {error.strerror or error}; "
            f"choose another --port (0 picks a free one) or --host."
        ) from None
    with server:
        bound = server.server_address[1]
        shown = f"[{host}]" if ":" in host else host
        if on_ready is not None:
            on_ready(f"http://{shown}:{bound}/dashboard/")
        server.serve_forever()
