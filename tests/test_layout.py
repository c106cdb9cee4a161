"""Imports run downward only: no module imports from a package above its own.

Each module belongs to the layer of the longest prefix below that names it.  A
module may import its own layer's modules and any lower layer's; a layer of the
same height is a sibling and is off limits, as is anything higher.  A new package
gets a line here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

_PACKAGE = Path(__file__).resolve().parent.parent / "dockertw"

# (module prefix, height): higher imports lower.
_LAYERS = [
    ("dockertw", 0),  # the package's own facts (__version__)
    ("dockertw.errdefs", 0),
    ("dockertw.versions", 0),
    ("dockertw.meters", 0),  # what is measured, through one interface (no Prometheus)
    ("dockertw.filters", 1),
    ("dockertw.streams", 1),
    ("dockertw.policy", 1),  # access policies: pure decisions, no I/O
    ("dockertw.runtime", 2),
    ("dockertw.daemon", 3),  # the engine's shared basics: storage, workers, events, ...
    ("dockertw.daemon.holder", 4),  # the live-restore holder process and its client
    ("dockertw.daemon.images", 4),
    ("dockertw.daemon.volumes", 4),
    ("dockertw.daemon.networks", 4),
    ("dockertw.daemon.distribution", 5),  # pulls and pushes images: above the image store
    ("dockertw.daemon.containers.records", 5),
    ("dockertw.daemon.containers.running", 6),
    ("dockertw.daemon.containers.files", 6),
    ("dockertw.daemon.containers.usage", 6),
    ("dockertw.daemon.containers", 7),  # service.py and the orchestrators beside it
    ("dockertw.daemon.system", 8),
    ("dockertw.daemon.builder", 8),
    ("dockertw.daemon.engine", 9),
    ("dockertw.api", 10),
    ("dockertw.api.routers", 11),
    ("dockertw.listeners", 10),
    ("dockertw.metrics", 10),  # Prometheus: the meters' sink, event counts, exposition
    ("dockertw.access", 11),  # policies per listener, read from files; their gates
    ("dockertw.settings", 1),  # daemon.json: a table of keys and options, no engine
    ("dockertw.tap", 12),
    ("dockertw.client", 2),  # beside the engine: only streams and the basics below it
]


def _module_name(path: Path) -> str:
    parts = path.relative_to(_PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> tuple[str, int]:
    matches = [(prefix, height) for prefix, height in _LAYERS
               if module == prefix or module.startswith(prefix + ".")]
    return max(matches, key=lambda match: len(match[0]))


def _imported(path: Path, module: str) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            base = node.module if node.level == 0 else _relative(module, node)
            found.update(f"{base}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.split(".")[0] == "dockertw"}


def _relative(module: str, node: ast.ImportFrom) -> str:
    base = module.split(".")[:-node.level]
    return ".".join(base + ([node.module] if node.module else []))


def _modules() -> list[Path]:
    return sorted(_PACKAGE.rglob("*.py"))


def test_every_module_has_a_layer() -> None:
    assert all(_layer(_module_name(path)) for path in _modules())


@pytest.mark.parametrize("path", _modules(), ids=lambda path: _module_name(path))
def test_imports_run_downward(path: Path) -> None:
    module = _module_name(path)
    own, height = _layer(module)
    upward = []
    for name in _imported(path, module):
        prefix, other = _layer(name)
        if prefix != own and other >= height:
            upward.append(f"{name} ({prefix}, height {other})")
    assert not upward, f"{module} ({own}, height {height}) imports upward: {upward}"


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    module = "dockertw.daemon.containers.records.record"
    source = tmp_path / "record.py"
    source.write_text("from dockertw.daemon.containers.running import lifecycle\n")
    name, = _imported(source, module)
    assert _layer(name)[1] >= _layer(module)[1]
