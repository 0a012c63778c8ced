"""The studio: ``zoomdream studio [FOLDER]``, a local web page to tune a look by seeing it.

What this package may import: the standard library, Starlette and uvicorn, and the zoomdream
modules that do not import TensorFlow at import time (``settings`` and its modules, ``fileio``,
``errors``, ``media``, and ``render.live``'s checks and worker handle). The web server process never imports
TensorFlow or Keras: previews and motion clips are made in a worker process
(:mod:`zoomdream.studio.workers`) and renders run the command line in a subprocess
(:mod:`zoomdream.studio.jobs`).

Modules, one job each:

* ``security``: the ASGI middleware (Host, Origin, token, Content-Security-Policy, upload cap)
  and :func:`~zoomdream.studio.security.confine`, the one way a request's path becomes a file.
* ``context``: :class:`~zoomdream.studio.context.StudioContext`, what every route shares (the
  root, the settings checks, the job queue, the worker), and the extension point for the
  Live panel.
* ``api``: the JSON routes under ``/api``.
* ``jobs``: the render queue, persisted under ``FOLDER/.zoomdream-studio/``.
* ``workers``: the warm preview worker process (superseding previews).
* ``server``: the app factory, static files and ``/files`` (Range requests), and ``serve``.
* ``static/``: the page (plain HTML, CSS and JavaScript; no build step, no network).
"""

__all__: list[str] = []
