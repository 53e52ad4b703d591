"""The public surface: ``reventless.__all__`` is honest and complete."""

from __future__ import annotations

import ast
import importlib
import types
from pathlib import Path

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


CORE = (
    "schedule",
    "fire_times",
    "rate_translation",
    "misfire",
    "_zones",
    "_suggest",
    "_timefmt",
    "errors",
)
ALLOWED_IN_CORE = {
    "__future__",
    "calendar",
    "collections",
    "datetime",
    "difflib",
    "enum",
    "functools",
    "re",
    "typing",
    "zoneinfo",
    "msgspec",
}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_pure_core_imports_no_io_library() -> None:
    """schedule, fire_times and rate_translation import only the stdlib basics, msgspec and
    each other: no anyio, sqlite3, aioboto3, and no adapter."""
    package = Path(reventless.__file__).parent
    for module in CORE:
        for name in imported_modules(package / f"{module}.py"):
            top = name.split(".")[0]
            if top == "reventless":
                assert name.split(".")[1] in CORE, f"{module} imports {name}"
            else:
                assert top in ALLOWED_IN_CORE, f"{module} imports {name}"


def test_aioboto3_only_under_aws() -> None:
    package = Path(reventless.__file__).parent
    for path in package.rglob("*.py"):
        if "aws" in path.relative_to(package).parts:
            continue
        tops = {name.split(".")[0] for name in imported_modules(path)}
        assert not tops & {"aioboto3", "aiobotocore", "botocore", "boto3"}, path


def test_the_aws_package_lists_what_it_offers() -> None:
    import reventless.aws

    assert isinstance(reventless.aws.__all__, tuple)
    for name in reventless.aws.__all__:
        assert getattr(reventless.aws, name) is not None


def test_the_dst_policy_is_public_with_its_default() -> None:
    from reventless.schedule import DEFAULT_DST

    assert "DstPolicy" in reventless.__all__
    assert reventless.DstPolicy.__module__ == "reventless.schedule"
    assert reventless.DstPolicy() == DEFAULT_DST
    assert reventless.Schedule(name="s", rate=reventless.Daily(9, 0), payload="p").dst == (
        DEFAULT_DST
    )
