"""The public surface: ``reventless.__all__`` is honest and complete."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
    "_rate_kinds",
    "_wall_time",
    "_calendar_fires",
    "fire_times",
    "rate_translation",
    "misfire",
    "_zones",
    "_suggest",
    "_timefmt",
    "_cron",
    "errors",
)
ALLOWED_IN_CORE = {
    "__future__",
    "bisect",
    "hashlib",
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


# Modules whose __all__ is public; a type their signatures name must be exported by one of them.
SIGNATURE_MODULES = [
    "reventless",
    "reventless.aggregate",
    "reventless.aggregate_adapter",
    "reventless.clock",
    "reventless.errors",
    "reventless.event_topic",
    "reventless.local",
    "reventless.misfire",
    "reventless.plugin",
    "reventless.provider",
    "reventless.reaction",
    "reventless.reaction_adapter",
    "reventless.schedule",
    "reventless.scheduler",
    "reventless.scheduler_adapter",
    "reventless.target",
    "reventless.testing",
]
# Providers are made by their module's provider(), and their adapters by the provider: these
# constructors are the wiring, not API.
WIRING = {
    "LocalProvider.__init__",
    "AwsProvider.__init__",
    "LocalScheduledPublisher.__init__",
    "SqliteEventLog.__init__",
    "AwsScheduledPublisher.__init__",
}


def _named_classes(hint: object) -> Iterator[type]:
    origin = typing.get_origin(hint)
    if origin is not None:
        for argument in typing.get_args(hint):
            yield from _named_classes(argument)
        if isinstance(origin, type):
            yield origin
    elif isinstance(hint, type):
        yield hint


def _signatures(value: object, name: str) -> Iterator[tuple[str, Any]]:
    if inspect.isfunction(value):
        yield name, value
    elif inspect.isclass(value):
        for attribute, member in vars(value).items():
            if attribute.startswith("_") and attribute != "__init__":
                continue
            function = member.fget if isinstance(member, property) else member
            if inspect.isfunction(function):
                yield f"{name}.{attribute}", function


def test_no_public_signature_names_a_private_type() -> None:
    modules = list(SIGNATURE_MODULES)
    if importlib.util.find_spec("aioboto3") is not None:
        modules.append("reventless.aws")
    public: list[tuple[str, object]] = []
    for module_name in modules:
        module = importlib.import_module(module_name)
        public += [(name, getattr(module, name)) for name in module.__all__]
    exported = {id(value) for _, value in public}
    # Names a module imports only for type checking resolve among the public ones.
    names = {name: value for name, value in public if isinstance(value, type)}
    found = set()
    for name, value in public:
        for label, function in _signatures(value, name):
            if label in WIRING:
                continue
            for field, hint in typing.get_type_hints(function, localns=names).items():
                for cls in _named_classes(hint):
                    if cls.__module__.startswith("reventless") and id(cls) not in exported:
                        found.add(f"{label} ({field}): {cls.__module__}.{cls.__qualname__}")
    assert sorted(found) == []
