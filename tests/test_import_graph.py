"""The layers of docs/architecture.md hold: no import cycle, no upward import (tools/import_graph.py)."""

from pathlib import Path

import pytest

from tools import import_graph


@pytest.fixture(scope="module")
def graph() -> import_graph.Graph:
    return import_graph.build()


def test_the_graph_sees_every_package(graph):
    assert {module.split(".")[0] for module in graph.modules} == set(import_graph.PACKAGES)
    # The imports hidden inside functions and under TYPE_CHECKING are edges too.
    assert ("forecast.apps", "markets.hooks") in {(edge.source, edge.target) for edge in graph.edges}


def test_no_module_imports_itself_through_others(graph):
    assert import_graph.cycles(graph) == []


def test_no_package_depends_on_one_that_depends_on_it(graph):
    assert import_graph.cycles(graph, key={name: import_graph.package_of(name) for name in graph.modules}) == []


def test_every_import_goes_down_the_layers(graph):
    assert [str(edge) for edge in import_graph.upward_imports(graph)] == []


def test_no_module_imports_another_modules_private_names(graph):
    assert [str(edge) for edge in import_graph.private_imports(graph)] == []


def test_only_the_url_modules_reach_into_views_and_apis(graph):
    assert [str(edge) for edge in import_graph.web_layer_imports(graph)] == []


def write(root: Path, name: str, text: str = "") -> None:
    path = root / (name.replace(".", "/") + ".py")
    path.parent.mkdir(parents=True, exist_ok=True)
    for parent in path.relative_to(root).parents:
        if str(parent) != ".":
            (root / parent / "__init__.py").touch()
    path.write_text(text)


def test_the_checks_catch_what_they_are_for(tmp_path):
    """A tree with one of each fault: the checks above could fail."""
    write(tmp_path, "config.core.api", "from accounts.models import User\n")
    write(tmp_path, "config.settings.base", "import markets.models\n")
    write(tmp_path, "accounts.models", "def f():\n    from config.core import api\n")
    write(tmp_path, "markets.models", "from markets.views.pages import _helper\n")
    write(tmp_path, "markets.views.pages", "_helper = 1\n")
    write(tmp_path, "markets.admin", "from .views import pages\n")
    write(tmp_path, "forecast.models")

    graph = import_graph.build(tmp_path)

    assert import_graph.cycles(graph) == [["accounts.models", "config.core.api"]]
    assert [(e.source, e.target) for e in import_graph.upward_imports(graph)] == [
        ("config.core.api", "accounts.models"),
        ("config.settings.base", "markets.models"),
    ]
    assert [(e.source, e.names) for e in import_graph.private_imports(graph)] == [("markets.models", ("_helper",))]
    assert sorted((e.source, e.target) for e in import_graph.web_layer_imports(graph)) == [
        ("markets.admin", "markets.views.pages"),
        ("markets.models", "markets.views.pages"),
    ]
