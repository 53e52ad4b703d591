"""The ``reventless`` command line: ``main(argv)`` is what the ``reventless`` command runs.

It is a client of the library: each command works through the providers and the components'
operations. Its modules: ``_main`` (the parser, ``preview``, ``demo`` and the dispatch),
``_store`` (``schedules``, ``schedulers``), ``_reactions``, ``_run`` and ``_signals`` (``run``
and its stop), ``_import`` (``schedules import``), ``_common`` (parsing and printing shared by
all), and ``demo`` (the demo's plugin, which examples and the deploy page reuse).
"""

from reventless.cli._main import main

__all__ = ("main",)
