"""One side of one benchmark in a fresh process: ``python worker.py MODULE FUNCTION KWARGS``.

``KWARGS`` is a JSON object; the function's result is printed as JSON on the last line, after
``RESULT``. ``run.py`` starts these, one process per measurement.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main(argv: list[str]) -> int:
    module, function, kwargs = argv[0], argv[1], json.loads(argv[2])
    result = getattr(importlib.import_module(module), function)(**kwargs)
    print("RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
