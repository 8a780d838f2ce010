"""The README's layout section names every module of the package, and only modules that exist."""

from __future__ import annotations

import re

from tests.support import REPO

PACKAGE = REPO / "asyncpipe"


def _layout_block() -> str:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    start = readme.index("## Layout")
    return readme[start : readme.index("```\n\n", readme.index("```", start) + 3)]


def _listed() -> set[str]:
    """Module paths as the tree draws them: a folder line, then its files indented below."""
    listed: set[str] = set()
    folders: list[tuple[int, str]] = []
    for line in _layout_block().splitlines():
        match = re.match(r"^(\s*)([\w.]+/|[\w]+\.py)\s", line + " ")
        if match is None:
            continue
        indent, name = len(match.group(1)), match.group(2)
        while folders and folders[-1][0] >= indent:
            folders.pop()
        path = "/".join(folder for _, folder in folders) + ("/" if folders else "") + name
        if name.endswith("/"):
            folders.append((indent, name.rstrip("/")))
        else:
            listed.add(path)
    return listed


def test_every_module_is_in_the_layout_and_every_listed_module_exists() -> None:
    modules = {
        str(path.relative_to(REPO))
        for path in PACKAGE.rglob("*.py")
        if path.name != "__main__.py"
        and not (path.name == "__init__.py" and path.parent != PACKAGE)
    }
    listed = {path for path in _listed() if path.startswith("asyncpipe/")}
    assert modules - listed == set(), "modules missing from the README's layout"
    assert listed - modules == set(), "the README's layout lists modules that do not exist"
