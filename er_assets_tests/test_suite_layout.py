"""The test suite's own layout: its folders mirror the packages, and no test module imports
another (shared code is in helpers.py, shared fixtures in conftest.py)."""

import ast

from er_assets_tests.helpers import REPO, TESTS

# er_assets_tests/bridge/ holds the autosys_bridge tests; every other folder is er_assets's.
PACKAGE_OF = {"bridge": REPO / "autosys_bridge"}


def _test_packages():
    return sorted(p.parent for p in TESTS.rglob("__init__.py") if p.parent != TESTS)


def test_every_test_folder_mirrors_a_package_folder():
    unmatched = []
    for folder in _test_packages():
        top, *rest = folder.relative_to(TESTS).parts
        package = PACKAGE_OF.get(top, REPO / "er_assets" / top).joinpath(*rest)
        if not (package / "__init__.py").is_file():
            unmatched.append(f"{folder.relative_to(REPO)} (no {package.relative_to(REPO)})")
    assert unmatched == []


def test_no_test_module_imports_another_or_the_conftest():
    offenders = []
    for path in sorted(TESTS.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):  # `from x import test_y` names module x.test_y
                names = [node.module or "", *(f"{node.module}.{a.name}" for a in node.names)]
            else:
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            for name in names:
                last = name.rsplit(".", 1)[-1]
                if name.startswith("er_assets_tests") and (last.startswith("test_") or last == "conftest"):
                    offenders.append(f"{path.relative_to(REPO)}:{node.lineno} imports {name}")
    assert offenders == []
