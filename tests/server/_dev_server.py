"""Development stand-in for ``python -m prefect_like.server`` until app.py includes the dashboard
router: the real app, with the router put in front of its catch-all ``/api/{rest}`` route."""

from __future__ import annotations

import sys

from prefect_like.server import __main__ as server_main
from prefect_like.server import app as server_app
from prefect_like.server.dashboard import router

_create_app = server_app.create_app


def create_app(home, **options):  # type: ignore[no-untyped-def]
    app = _create_app(home, **options)
    before = len(app.router.routes)
    app.include_router(router)
    added = app.router.routes[before:]
    del app.router.routes[before:]
    app.router.routes[:0] = added
    return app


server_app.create_app = create_app

if __name__ == "__main__":
    sys.exit(server_main.main())
