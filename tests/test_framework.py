"""The service framework as the spec's ``main.py`` uses it."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

import service_framework
from p2p_orchestrator import BaseService, service_method
from p2p_orchestrator.framework import merge_configuration
from tests.helpers import EXAMPLE


def _load_example() -> ModuleType:
    sys.path.insert(0, str(EXAMPLE))
    try:
        spec = importlib.util.spec_from_file_location("example_main", EXAMPLE / "main.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(EXAMPLE))


def test_the_top_level_module_is_the_framework() -> None:
    assert service_framework.BaseService is BaseService
    assert service_framework.service_method is service_method


async def test_the_example_service_knows_its_name_config_methods_and_state() -> None:
    run = _load_example().Run()
    assert run.state == "not_initialized"
    run.bind(name="example_service", config={"greeting": "Hey"})
    await run.initialize()
    methods = run.exposed_methods()
    assert set(methods) == {"example_method", "greet", "stats", "ping", "get_service_info"}
    assert methods["example_method"].description == "Example method"
    assert methods["stats"].public is False
    assert await run.call_method("example_method") == {"message": "Hello from service!"}
    greeting = await run.call_method("greet", {"name": "Ada"})
    assert greeting["message"] == "Hey, Ada!"
    assert run.describe()["config"] == {"greeting": "Hey"}


async def test_calls_to_unexposed_methods_or_with_bad_params_are_refused() -> None:
    class Svc(BaseService):
        async def hidden(self) -> None:
            raise AssertionError("must not run")

        @service_method()
        async def add(self, a: int, b: int) -> int:
            return a + b

    svc = Svc()
    assert await svc.call_method("add", {"a": 1, "b": 2}) == 3
    with pytest.raises(LookupError):
        await svc.call_method("hidden")
    with pytest.raises(LookupError):
        await svc.call_method("initialize")
    with pytest.raises(TypeError, match="bad parameters"):
        await svc.call_method("add", {"a": 1})


def test_overriding_without_the_decorator_unexposes() -> None:
    class Parent(BaseService):
        @service_method(description="p")
        async def m(self) -> None: ...

    class Child(Parent):
        async def m(self) -> None: ...

    assert "m" in Parent.exposed_methods()
    assert "m" not in Child.exposed_methods()


def test_service_method_needs_async_def_and_parentheses() -> None:
    with pytest.raises(TypeError, match="async def"):

        class Bad(BaseService):
            @service_method()
            def sync(self) -> None: ...

    with pytest.raises(TypeError, match="must be a string"):
        service_method(lambda: None)  # type: ignore[arg-type]


def test_configuration_layers_merge_nested_objects() -> None:
    manifest = {"a": 1, "db": {"host": "x", "port": 1}}
    default = {"db": {"port": 2}, "b": [1]}
    operator = {"db": {"host": "y"}, "a": None}
    merged = merge_configuration(manifest, default, operator)
    assert merged == {"a": None, "db": {"host": "y", "port": 2}, "b": [1]}
    assert manifest == {"a": 1, "db": {"host": "x", "port": 1}}


def test_example_service_directory_has_the_spec_layout() -> None:
    for relative in ("main.py", "manifest.json", "config/default.json", "assets/motd.txt"):
        assert (Path(EXAMPLE) / relative).is_file()


async def test_each_class_keeps_its_own_methods_and_signatures_across_calls() -> None:
    """The exposed methods and signatures are found once per class; a subclass has its own."""

    class Parent(BaseService):
        @service_method()
        async def add(self, a: int, b: int) -> int:
            return a + b

    class Child(Parent):
        @service_method()
        async def add(self, a: int, b: int = 10, c: int = 0) -> int:  # type: ignore[override]
            return a + b + c

    parent, child = Parent(), Child()
    for _ in range(2):  # the second round uses what the first found
        assert await parent.call_method("add", {"a": 1, "b": 2}) == 3
        assert await child.call_method("add", {"a": 1, "c": 5}) == 16
        with pytest.raises(TypeError, match="bad parameters"):
            await parent.call_method("add", {"a": 1, "c": 5})
    parent.exposed_methods().clear()  # a caller's copy: the class's own stays whole
    assert set(Parent.exposed_methods()) == {"add", "ping", "get_service_info"}

    async def own(a: int) -> int:  # an instance's own attribute wins over the class's method
        return -a

    child.add = own  # type: ignore[method-assign]
    assert await child.call_method("add", {"a": 4}) == -4
    with pytest.raises(TypeError, match="bad parameters"):
        await child.call_method("add", {"a": 4, "b": 1})
