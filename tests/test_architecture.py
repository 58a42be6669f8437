"""The package's shape, checked: the rules docs/architecture.md states, so they stay true.

* No module reaches into another module's private attributes: an interface has a name.
* Only ``mesiboscript/_wsclient.py`` imports websocket-client, and nothing private of it.
* No import cycle between the package's modules (at import time).
* The sans-I/O core imports nothing that does I/O (sockets, threads, selectors, time).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "mesiboscript"


def _modules() -> dict[str, ast.Module]:
    return {
        str(path.relative_to(PACKAGE.parent)): ast.parse(path.read_text(encoding="utf-8"))
        for path in sorted(PACKAGE.rglob("*.py"))
    }


def _own_names(tree: ast.Module) -> set[str]:
    own: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            own.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            own.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            own.add(node.id)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            own.add(node.value)  # __slots__ entries
    return own


#: Private names of the standard library used on purpose, each with the reason.
STDLIB_PRIVATE = {
    # A handler's sys.exit(n) must end the process with n after the interpreter chose 0: the
    # exit hook runs the other exit hooks, then os._exit(n). No public API runs them.
    "atexit._run_exitfuncs",
}


def test_no_module_reaches_into_another_modules_private_attributes() -> None:
    found = []
    for name, tree in _modules().items():
        own = _own_names(tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Attribute):
                continue
            attr = node.attr
            if not attr.startswith("_") or attr.startswith("__") or attr in own:
                continue
            if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                continue
            if ast.unparse(node) in STDLIB_PRIVATE:
                continue
            found.append(f"{name}:{node.lineno}: {ast.unparse(node)}")
    assert found == []


def _imports(tree: ast.Module) -> list[tuple[str, int]]:
    """(module, level) of every import statement at module level (not inside functions), those
    under ``if TYPE_CHECKING:`` included: a cycle of type-only imports is still a cycle of
    concepts."""
    out: list[tuple[str, int]] = []
    for node in tree.body:
        stmts = [node]
        if isinstance(node, (ast.If, ast.Try)):
            stmts = list(node.body)
        for stmt in stmts:
            if isinstance(stmt, ast.Import):
                out += [(alias.name, 0) for alias in stmt.names]
            elif isinstance(stmt, ast.ImportFrom):
                base = stmt.module or ""
                if stmt.level and not base:
                    out += [(alias.name, stmt.level) for alias in stmt.names]
                else:
                    out.append((base, stmt.level))
    return out


def test_only_one_module_uses_websocket_client_and_only_its_public_api() -> None:
    users = []
    for name, tree in _modules().items():
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [node.module]
            for module in names:
                if module == "websocket" or module.startswith("websocket."):
                    users.append((name, module))
    assert users == [("mesiboscript/_wsclient.py", "websocket")]


def _resolve(name: str, module: str, level: int) -> str:
    parts = name[: -len(".py")].split("/")[:-1]  # the package a relative import starts from
    if level:
        parts = parts[: len(parts) - (level - 1)]
        return ".".join([*parts, module] if module else parts)
    return module


def test_no_import_cycles() -> None:
    modules = _modules()
    dotted = {
        n[: -len(".py")].replace("/", ".").removesuffix(".__init__"): tree
        for n, tree in modules.items()
    }
    graph: dict[str, set[str]] = {}
    for name, tree in modules.items():
        me = name[: -len(".py")].replace("/", ".").removesuffix(".__init__")
        deps = set()
        for module, level in _imports(tree):
            target = _resolve(name, module, level)
            while target and target not in dotted:
                target = target.rpartition(".")[0]
            if target and target != me and target != "mesiboscript":
                deps.add(target)
        graph[me] = deps
    cycles = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                cycles.append([*stack[stack.index(dep) :], dep])
            elif dep not in state:
                visit(dep)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert cycles == []


def test_the_sansio_core_does_no_io() -> None:
    forbidden = {"socket", "ssl", "select", "selectors", "threading", "time", "asyncio"}
    found = []
    for name, tree in _modules().items():
        if not name.startswith("mesiboscript/sansio/"):
            continue
        for module, level in _imports(tree):
            if not level and module.split(".")[0] in forbidden:
                found.append((name, module))
    assert found == []
