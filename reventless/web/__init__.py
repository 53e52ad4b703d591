"""The web console (extra ``reventless[web]``: Starlette, uvicorn, Jinja2).

``reventless web --db app.db [--token ...]`` serves it; an application can mount its own::

    app = reventless.web.create_app(provider, token=os.environ["REVENTLESS_WEB_TOKEN"])

It reads and acts only through the provider's ports (``ScheduledPublisher``, ``Reactions``,
``EventLog``), so every provider that implements them gets it; what a provider cannot tell is
shown as not available. See docs/console.md.
"""

from __future__ import annotations

from reventless.web._app import create_app

__all__ = ("create_app",)
