"""Every module imports only the packages that docs/architecture.md allows its package.

The table's "may import" column is the contract: a package imports itself, the root
``drscreen`` (its version) and the packages listed, and the table itself has no cycle, so
imports run one way.
"""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROW = re.compile(r"^\| `(?:drscreen/)?(\w+)` \|[^|]*\| ([^|]*) \|")


def _allowed() -> dict[str, set[str]]:
    """Package to the packages it may import, from the table in docs/architecture.md."""
    allowed = {}
    for line in (ROOT / "docs" / "architecture.md").read_text().splitlines():
        match = ROW.match(line)
        if match:
            package, imports = match.groups()
            allowed[package] = set(re.findall(r"`(\w+)`", imports))
    return allowed


def _imported_packages(path: Path) -> set[str]:
    """The drscreen packages a module imports (``drscreen.X`` or ``from drscreen import X``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module]
            if node.module == "drscreen":
                modules = [f"drscreen.{alias.name}" for alias in node.names]
        else:
            continue
        for module in modules:
            parts = module.split(".")
            if parts[0] == "drscreen" and len(parts) > 1:
                found.add(parts[1])
    return found


def _packages() -> dict[str, list[Path]]:
    modules = {
        path.name: sorted(path.rglob("*.py"))
        for path in (ROOT / "drscreen").iterdir()
        if path.is_dir() and (path / "__init__.py").is_file()
    }
    modules["scripts"] = sorted((ROOT / "scripts").glob("*.py"))
    return modules


def test_every_package_is_in_the_table():
    """No package escapes the contract; the table names no package that does not exist."""
    assert set(_allowed()) == set(_packages())


def test_imports_follow_the_table():
    """Each module imports only its own package and the ones its row allows."""
    allowed, modules = _allowed(), set(_packages())
    wrong = []
    for package, paths in _packages().items():
        for path in paths:
            for imported in _imported_packages(path) & modules - {package}:
                if imported not in allowed[package]:
                    wrong.append(f"{path.relative_to(ROOT)} imports drscreen.{imported}")
    assert not wrong, "\n".join(wrong)


def test_the_table_has_no_cycle():
    """Imports run one way: the allowed-imports graph is acyclic."""
    allowed = _allowed()
    visiting, done = set(), set()

    def visit(package: str, path: tuple[str, ...]) -> None:
        assert package not in visiting, f"import cycle: {' -> '.join((*path, package))}"
        if package in done:
            return
        visiting.add(package)
        for imported in allowed.get(package, ()):
            visit(imported, (*path, package))
        visiting.remove(package)
        done.add(package)

    for package in allowed:
        visit(package, ())
