"""The public surface: ``reventless.__all__`` is honest and complete."""

from __future__ import annotations

import importlib
import subprocess
import sys
import types

import reventless


def test_every_name_in_all_exists_and_is_public() -> None:
    assert isinstance(reventless.__all__, tuple)
    assert len(set(reventless.__all__)) == len(reventless.__all__)
    for name in reventless.__all__:
        assert not name.startswith("_")
        assert getattr(reventless, name) is not None


def test_every_public_attribute_is_listed() -> None:
    public = {
        name
        for name, value in vars(reventless).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public == set(reventless.__all__)


def test_public_classes_and_functions_name_their_home_module() -> None:
    for name in reventless.__all__:
        value = getattr(reventless, name)
        module = getattr(value, "__module__", None)
        if module is not None and module.startswith("reventless"):
            assert importlib.import_module(module) is not None


def test_pure_core_imports_no_io_library() -> None:
    """The core must not pull in anyio, sqlite3 or aioboto3."""
    code = (
        "import sys, reventless; "
        "bad = {'anyio', 'sqlite3', 'aioboto3', 'botocore', 'asyncio'} & set(sys.modules); "
        "print(sorted(bad))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
