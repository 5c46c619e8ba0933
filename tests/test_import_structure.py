"""The package's import structure: no cycle between its parts, every part importable on its own.

Layering (low to high): errors, io, json_fields, ... -> config -> samplers, schedule -> contracts
(pipeline.json and blocks manifest records) -> modeling -> coreml (coremltools helpers, reading a
package, the palettizable-weight selection; imports nothing of the package but errors) -> convert
-> interpreter (runs converted programs on the CPU; never imports verify) -> verify -> mixed_bits
-> cli (device_benchmark: the `report` command's aggregation). Every import counts, also the ones
inside functions: a deferred import only hides a cycle until the day someone moves it to the top
of the file.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import snapfusion_coreml

PACKAGE = Path(snapfusion_coreml.__file__).resolve().parent
NAME = "snapfusion_coreml"


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[0] == "models":  # the bundled data folder
            continue
        parts = parts[:-1] if parts[-1] == "__init__" else parts
        found[".".join((NAME, *parts))] = path
    return found


def _imports(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that `module` imports anywhere in its file."""
    is_package = path.name == "__init__.py"
    targets = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join(anchor + ([base] if base else []))
            targets.add(base)
            targets.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import submodule`
    return {t for t in targets if t in modules and t != module}


def _unit(module: str) -> str:
    """The part a module belongs to: its subpackage, or itself for a module at the package root."""
    parts = module.split(".")
    if len(parts) == 1:
        return NAME
    return parts[1]


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of `graph` as a path (first node repeated at the end), or None."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def _unit_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        unit = _unit(module)
        graph.setdefault(unit, set()).update(u for u in map(_unit, _imports(module, path, modules)) if u != unit)
    return graph


def test_import_walk_sees_the_known_edges():
    graph = _unit_graph()
    assert {"convert", "verify", "coreml", "cli", "mixed_bits", "interpreter", "contracts", "device_benchmark"} <= set(graph)
    assert {"coreml", "convert", "interpreter"} <= graph["mixed_bits"]
    assert "coreml" in graph["convert"] and "coreml" in graph["interpreter"] and "coreml" in graph["verify"]
    assert "interpreter" in graph["verify"]
    assert "contracts" in graph["convert"] and "contracts" in graph["interpreter"]
    assert "device_benchmark" in graph["cli"]


def test_interpreter_never_imports_verify_and_coreml_only_errors():
    """verify builds on the interpreter, not the other way; coreml is the lowest Core ML layer."""
    graph = _unit_graph()
    assert "verify" not in graph["interpreter"], sorted(graph["interpreter"])
    assert graph["coreml"] <= {"errors"}, sorted(graph["coreml"])


def test_cycle_finder_reports_a_cycle():
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_between_parts():
    """Subpackages and root modules form a DAG (e.g. convert never imports verify)."""
    cycle = _find_cycle(_unit_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_no_import_cycle_between_modules():
    modules = _modules()
    graph = {m: _imports(m, p, modules) for m, p in modules.items()}
    # a package's __init__ re-exporting its own modules is not a cycle with them
    graph = {m: {t for t in ts if not m.startswith(t + ".")} for m, ts in graph.items()}
    cycle = _find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


@pytest.mark.slow
def test_every_part_imports_first_in_a_fresh_interpreter():
    """Each subpackage imported as the first module of the package (in one fresh interpreter,
    forgetting the package's modules between them), so no part relies on another being loaded first."""
    parts = sorted(u for u in _unit_graph() if u != NAME)
    parts = [p for p in parts if (PACKAGE / p).is_dir()] + ["mixed_bits"]
    script = (
        "import importlib, sys\n"
        f"for part in {parts!r}:\n"
        f"    for name in [m for m in sys.modules if m == {NAME!r} or m.startswith({NAME + '.'!r})]:\n"
        "        del sys.modules[name]\n"
        f"    importlib.import_module({NAME + '.'!r} + part)\n"
        "    print('imported', part)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=PACKAGE.parent)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == [w for p in parts for w in ("imported", p)]


def test_convert_takes_the_mixed_recipe_from_above(tiny_pipeline, tmp_path):
    """convert cannot import the mixed-bit analysis (it sits above convert), so a mixed:BITS run
    without the recipe function is refused before any work; the CLI passes mixed_bit_recipe."""
    from snapfusion_coreml.convert import ConvertOptions, convert_pipeline, parse_compression

    options = ConvertOptions(out=tmp_path / "out", components=("unet",), compression=parse_compression("mixed:4", "kmeans"))
    with pytest.raises(ValueError, match="mixed_recipe=snapfusion_coreml.mixed_bits.mixed_bit_recipe"):
        convert_pipeline(tiny_pipeline, options)
    assert not (tmp_path / "out").exists()
