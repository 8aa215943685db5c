"""The import graph of Forecastle's packages, checked against the layers of docs/architecture.md.

    python -m tools.import_graph            # prints the figures and every violation; exit 1 if any

Every `import` and `from ... import` statement counts, wherever it stands (top level, inside a
function, under `if TYPE_CHECKING:`): each is a dependency even when Python would not run it at
import time. `from package import name` counts as an import of `package.name` when that is a module.

Checks:
- cycles: no two modules import each other, directly or through others;
- layers: an import goes down or sideways, never up (bottom < accounts < markets < forecast < wiring;
  the settings import nothing of the project but other settings modules);
- private names: no module imports a `_name` from another module (shared helpers get a public home);
- views: a module of an app's `views` or `apis` package is imported only by that package and by the
  app's URL modules (the admin and the services never reach up into the web layer).
"""

import ast
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("config", "accounts", "markets", "forecast")

# Layers from the bottom; an import may only go to the same layer or a lower one.
BOTTOM = "config.core"
LAYERS = ("bottom", "accounts", "markets", "forecast", "wiring")
SETTINGS = "config.settings"
WEB_PACKAGES = ("views", "apis")
URL_MODULES = ("urls", "api_urls")


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    line: int
    names: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"{self.source} -> {self.target} (line {self.line})"


@dataclass
class Graph:
    modules: dict[str, Path] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)

    def targets(self, module: str) -> set[str]:
        return {edge.target for edge in self.edges if edge.source == module}


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def python_files(root: Path) -> Iterator[Path]:
    for package in PACKAGES:
        yield from sorted((root / package).rglob("*.py"))


def _resolve_relative(module: str, is_package: bool, level: int, name: str | None) -> str:
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join([*base, name] if name else base)


def _project_target(name: str, modules: dict[str, Path]) -> str | None:
    """The longest project module that `name` is or lies in (None for anything outside the project)."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def build(root: Path = ROOT) -> Graph:
    graph = Graph()
    for path in python_files(root):
        graph.modules[module_name(path, root)] = path
    for module, path in graph.modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        is_package = path.name == "__init__.py"
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    target = _project_target(alias.name, graph.modules)
                    if target:
                        graph.edges.append(Edge(module, target, node.lineno))
            elif isinstance(node, ast.ImportFrom):
                base = (
                    _resolve_relative(module, is_package, node.level, node.module) if node.level else node.module or ""
                )
                names_by_target: dict[str, list[str]] = {}
                for alias in node.names:
                    target = _project_target(f"{base}.{alias.name}", graph.modules)
                    if target is None or target == module:
                        target = _project_target(base, graph.modules)
                    if target and target != module:
                        names_by_target.setdefault(target, []).append(alias.name)
                for target, names in names_by_target.items():
                    graph.edges.append(Edge(module, target, node.lineno, tuple(names)))
    return graph


def layer(module: str) -> str | None:
    """The layer a module belongs to (None for the settings, which are checked on their own)."""
    if module == SETTINGS or module.startswith(SETTINGS + "."):
        return None
    if module == BOTTOM or module.startswith(BOTTOM + "."):
        return "bottom"
    top = module.split(".")[0]
    if top == "config":
        return "wiring"
    return top


def cycles(graph: Graph, nodes: Iterable[str] | None = None, key: "dict[str, str] | None" = None) -> list[list[str]]:
    """Strongly connected components with more than one member (Tarjan), optionally of a collapsed graph."""
    rename = key or {}
    adjacency: dict[str, set[str]] = {}
    for name in nodes if nodes is not None else graph.modules:
        adjacency.setdefault(rename.get(name, name), set())
    for edge in graph.edges:
        source, target = rename.get(edge.source, edge.source), rename.get(edge.target, edge.target)
        if source != target:
            adjacency.setdefault(source, set()).add(target)
            adjacency.setdefault(target, set())

    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(start: str) -> None:
        nonlocal counter
        # Iterative Tarjan: (node, iterator over its successors).
        work = [(start, iter(sorted(adjacency[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            for successor in successors:
                if successor not in index:
                    index[successor] = low[successor] = counter
                    counter += 1
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(sorted(adjacency[successor]))))
                    break
                if successor in on_stack:
                    low[node] = min(low[node], index[successor])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))

    for node in sorted(adjacency):
        if node not in index:
            visit(node)
    return sorted(found)


def package_of(module: str) -> str:
    """The unit of the package-level graph: config's bottom layer and settings apart from its wiring."""
    for prefix in (BOTTOM, SETTINGS):
        if module == prefix or module.startswith(prefix + "."):
            return prefix
    return module.split(".")[0]


def upward_imports(graph: Graph) -> list[Edge]:
    found = []
    for edge in graph.edges:
        source, target = layer(edge.source), layer(edge.target)
        if source is None:
            if not (edge.target == SETTINGS or edge.target.startswith(SETTINGS + ".")):
                found.append(edge)
        elif target is None or LAYERS.index(target) > LAYERS.index(source):
            found.append(edge)
    return found


def private_imports(graph: Graph) -> list[Edge]:
    return [edge for edge in graph.edges if any(name.startswith("_") for name in edge.names)]


def _web_package(module: str) -> str | None:
    parts = module.split(".")
    if len(parts) >= 2 and parts[1] in WEB_PACKAGES:
        return ".".join(parts[:2])
    return None


def web_layer_imports(graph: Graph) -> list[Edge]:
    found = []
    for edge in graph.edges:
        package = _web_package(edge.target)
        if package is None:
            continue
        app = edge.target.split(".")[0]
        allowed_sources = {f"{app}.{name}" for name in URL_MODULES}
        if edge.source in allowed_sources or edge.source == package or edge.source.startswith(package + "."):
            continue
        found.append(edge)
    return found


def main() -> int:
    graph = build()
    module_cycles = cycles(graph)
    package_cycles = cycles(graph, key={name: package_of(name) for name in graph.modules})
    checks = {
        "module cycles": [" -> ".join(cycle) for cycle in module_cycles],
        "package cycles": [" <-> ".join(cycle) for cycle in package_cycles],
        "upward imports": [str(edge) for edge in upward_imports(graph)],
        "private-name imports": [
            f"{edge} imports {', '.join(name for name in edge.names if name.startswith('_'))}"
            for edge in private_imports(graph)
        ],
        "imports of views/apis from outside the web layer": [str(edge) for edge in web_layer_imports(graph)],
    }
    print(f"{len(graph.modules)} modules, {len(graph.edges)} imports between them")
    for title, problems in checks.items():
        print(f"{title}: {len(problems)}")
        for problem in problems:
            print(f"  {problem}")
    return 1 if any(checks.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
