"""The docs name only what exists: every repository path README.md and docs/*.md name is in the
checkout, every link between them lands on a file and a heading, the README's map of the code
("Where things are") names every top-level folder and every part of the package, each of its
rows names files of its own folder, its reading order names functions that its files define, and
its Set up keeps exactly the two commands that scripts/wheel_check.sh and .ci/run run.

What is checked, per file (README.md, docs/*.md):

- **Links** `[text](target)`: every target that is not a URL (`scheme://`, `mailto:`) exists,
  relative to the linking file as GitHub resolves it; a `#anchor` (on its own or after a `.md`
  target) is a heading of that file, slugged as GitHub does (lower case, punctuation dropped,
  spaces to `-`, `-1`, `-2` for repeats).
- **Code** (inline spans and fenced blocks), token by token (split on white space, outer quotes,
  brackets and punctuation stripped; a pytest `::test_name` suffix must be a function of the file):
  - a token that starts with a top-level entry of the repository (`snapfusion_coreml/`, `tests/`,
    `scripts/`, `docs/`, ...) exists from the root or from the file's own folder;
  - in inline spans, a token that starts with a folder or module of the package (`convert/`,
    `interpreter/execute.py`, `memory.py`: the docs name package files relative to
    `snapfusion_coreml/`) exists under `snapfusion_coreml/` (or from the root or the file's folder);
  - a file name ending `.py`, `.sh` or `.swift` with no folder (`TorchBoxMuller.swift`) is a file
    somewhere in the repository (a bare `.md` name is not checked: `results.md` is an output's);
    a `.py`, `.md`, `.sh` or `.swift` path with a folder that fits none of the above
    (`Random/TorchBoxMuller.swift`) exists under the root, the file's folder, `snapfusion_coreml/`
    or `ios_app/`.
- **Prose** (outside code and links): a token that starts with a top-level entry of the
  repository, as for code (`tests/golden/random.json`, `docs/contracts.md`).

Skipped, because they name no file of the repository: URLs and hub ids (`://`, `hf:`); tokens with
wildcard or placeholder characters (`* ? [ ] < > { } $ | = ...`, e.g. `benchmarks/*.py`,
`images/w<guidance>/`); placeholders in capitals (`OUT/`, `MODEL/x.png`, `RUN_DIR/...`);
options (`-o/--out`); the files of a model or converted folder (`unet/config.json`, `vae/`,
`pipeline.json` and any other `.json` name without a repository folder: file formats, not files
here); a user's outputs and environments (`out/...`, `.venv/...`, `../out/default` run from
`ios_app/`); and the source files of other projects that the docs cite by name (EXTERNAL).
"""

from __future__ import annotations

import os
import re
import subprocess
from functools import lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "snapfusion_coreml"
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# apple/ml-stable-diffusion's and swift-coreml-diffusers' sources, cited where the README says what
# their apps read (docs/cli.md "Which apps can run it")
EXTERNAL = {"TextEncoder.swift", "Scheduler.swift", "DPMSolverMultistepScheduler.swift",
            "StableDiffusionPipeline+Resources.swift", "ModelInfo.swift"}
CODE_FILES = (".py", ".md", ".sh", ".swift")
BARE_FILES = (".py", ".sh", ".swift")  # a bare `results.md` is an output's name
WILDCARDS = set("*?[]<>{}$|=%^~\\")
LEADING = "\"'`([{"
TRAILING = "\"'`)]},;:.!?"
FENCE = re.compile(r"^ {0,3}(```|~~~).*?^ {0,3}\1[^\n]*$", re.S | re.M)
INLINE = re.compile(r"(`+)(.+?)\1", re.S)
LINK = re.compile(r"\[(?:[^\[\]]|\[[^\]]*\])*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^ {0,3}#{1,6}\s+(.+?)\s*#*\s*$", re.M)
SKIPPED_FIRST = {"out", ".venv", "..", "."}
SKIPPED_FOLDERS = {"out", "build", "dist", "__pycache__"}


@lru_cache(maxsize=None)
def _tracked() -> tuple[str, ...]:
    """The repository's files as git lists them, else every file of the checkout (a copy without .git)."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=60)
        files = [name for name in listed.stdout.decode().split("\0") if name]
        if files:
            return tuple(files)
    except (OSError, subprocess.SubprocessError):
        pass
    return tuple(str(path.relative_to(ROOT)) for path in _files())


@lru_cache(maxsize=None)
def _top_level() -> frozenset[str]:
    return frozenset(name.split("/")[0] for name in _tracked())


@lru_cache(maxsize=None)
def _package_parts() -> frozenset[str]:
    """Folders and modules directly under snapfusion_coreml/ (the docs' package-relative roots)."""
    return frozenset(p.name for p in PACKAGE.iterdir() if not p.name.startswith((".", "__")) or p.name == "__init__.py")


@lru_cache(maxsize=None)
def _files() -> tuple[Path, ...]:
    """Every file of the checkout outside hidden, build and output folders (new files too, before
    git knows them)."""
    found = []
    for folder, dirs, names in os.walk(ROOT):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in SKIPPED_FOLDERS]
        found += [Path(folder, n) for n in names]
    return tuple(found)


@lru_cache(maxsize=None)
def _basenames() -> frozenset[str]:
    return frozenset(path.name for path in _files())


def _without_fences(text: str) -> str:
    return FENCE.sub("", text)


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: markup and punctuation dropped, lower case, spaces to '-'."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text only
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


@lru_cache(maxsize=None)
def anchors(path: Path) -> frozenset[str]:
    seen: dict[str, int] = {}
    found = set()
    for match in HEADING.finditer(_without_fences(path.read_text(encoding="utf-8"))):
        base = slug(match.group(1))
        n = seen.get(base, 0)
        seen[base] = n + 1
        found.add(base if n == 0 else f"{base}-{n}")
    return frozenset(found)


def _clean(token: str) -> str:
    return token.lstrip(LEADING).rstrip(TRAILING)


def _skipped(token: str) -> bool:
    first = token.split("/")[0]
    return (not token or "://" in token or token.startswith(("hf:", "-", "~")) or bool(WILDCARDS & set(token))
            or first in SKIPPED_FIRST or (first.isupper() and first.replace("_", "").isalnum())
            or not re.fullmatch(r"[\w.+@/-]+", token))


def _exists(token: str, doc: Path, bases: tuple[Path, ...]) -> bool:
    path = token.rstrip("/")
    return any((base / path).exists() for base in (ROOT, doc.parent, *bases))


def _test_defined(file_token: str, name: str, doc: Path) -> bool:
    for base in (ROOT, doc.parent, PACKAGE):
        path = base / file_token
        if path.is_file():
            return re.search(rf"^\s*(async\s+)?def {re.escape(name)}\b", path.read_text(encoding="utf-8"), re.M) is not None
    matches = [path for path in _files() if path.name == file_token]
    return any(re.search(rf"^\s*def {re.escape(name)}\b", p.read_text(encoding="utf-8"), re.M) for p in matches)


def check_token(raw: str, doc: Path, where: str) -> str | None:
    """A problem with one token (None when it names no repository path, or one that exists).
    where: "inline" (a code span), "fence" (a fenced block) or "prose"."""
    token = _clean(raw)
    test_name = None
    if "::" in token:
        token, _, rest = token.partition("::")
        test_name = rest if re.fullmatch(r"\w+", rest) else None
    if _skipped(token):
        return None
    first = token.split("/")[0]
    if first in _top_level() and ("/" in token or token.endswith(CODE_FILES)):
        found = _exists(token, doc, ())
    elif where == "prose":
        return None
    elif where == "inline" and "/" in token and first in _package_parts():
        found = _exists(token, doc, (PACKAGE,))
    elif "/" not in token:
        if not token.endswith(BARE_FILES):
            return None
        found = token in EXTERNAL or token in _basenames()
    elif token.endswith(CODE_FILES):
        found = _exists(token, doc, (PACKAGE, ROOT / "ios_app"))
    else:
        return None
    if not found:
        return f"{doc.relative_to(ROOT)}: {where} path {raw!r} does not exist"
    if test_name and not _test_defined(token, test_name, doc):
        return f"{doc.relative_to(ROOT)}: {raw!r}: no test function {test_name} in {token}"
    return None


def path_problems(doc: Path) -> list[str]:
    text = doc.read_text(encoding="utf-8")
    problems = []
    for block in FENCE.finditer(text):
        problems += [check_token(t, doc, "fence") for t in block.group(0).split()[1:]]
    rest = _without_fences(text)
    for span in INLINE.finditer(rest):
        problems += [check_token(t, doc, "inline") for t in span.group(2).split()]
    prose = LINK.sub(" ", INLINE.sub(" ", rest))
    problems += [check_token(t, doc, "prose") for t in prose.split()]
    return [p for p in problems if p]


def link_problems(doc: Path) -> list[str]:
    problems = []
    for match in LINK.finditer(INLINE.sub(" ", _without_fences(doc.read_text(encoding="utf-8")))):
        target = match.group(1)
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        path = (doc.parent / file_part).resolve() if file_part else doc
        name = f"{doc.relative_to(ROOT)}: link {target!r}"
        if not path.exists():
            problems.append(f"{name}: no such file or folder")
        elif ROOT not in path.parents and path != ROOT:
            problems.append(f"{name}: outside the repository")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            problems.append(f"{name}: no heading with that anchor in {path.relative_to(ROOT)}")
    return problems


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_named_path_exists(doc):
    problems = path_problems(doc)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_link_lands(doc):
    problems = link_problems(doc)
    assert not problems, "\n".join(problems)


def _section(text: str, title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", _without_fences(text), re.S | re.M)
    assert match, f"expected a section '## {title}' in README.md"
    return match.group(1)


def test_the_readme_map_names_every_top_level_folder_and_package_part():
    section = _section((ROOT / "README.md").read_text(encoding="utf-8"), "Where things are")
    named = {_clean(t).rstrip("/") for span in INLINE.finditer(section) for t in span.group(2).split()}

    def is_named(path: str) -> bool:
        return any(name == path or name.startswith(f"{path}/") for name in named)

    folders = {name for name in _top_level() if (ROOT / name).is_dir()}
    missing = sorted(f"{name}/" for name in folders if not is_named(name))
    parts = {p.name for p in PACKAGE.iterdir() if p.is_dir() and not p.name.startswith((".", "__"))}
    missing += sorted(f"snapfusion_coreml/{name}/" for name in parts if not is_named(f"snapfusion_coreml/{name}"))
    modules = {p.name for p in PACKAGE.glob("*.py") if not p.name.startswith("__")}
    missing += sorted(f"snapfusion_coreml/{name}" for name in modules if name not in named)
    assert not missing, f"README.md 'Where things are' does not name: {', '.join(missing)}"


def test_each_map_row_names_files_of_its_folder():
    """In the map's table, a bare file or folder name (`recipe.py`, `kernels/`) is in the folder of
    its row (`snapfusion_coreml/convert/`); the rows of root modules name files of snapfusion_coreml/."""
    section = _section((ROOT / "README.md").read_text(encoding="utf-8"), "Where things are")
    problems, folder = [], PACKAGE
    for row in re.findall(r"^\|(.*)\|\s*$", section, re.M):
        first, _, rest = row.partition("|")
        head = [m.group(2) for m in INLINE.finditer(first)]
        if head and head[0].endswith("/") and (ROOT / head[0]).is_dir():
            folder = ROOT / head[0]
        elif first.strip() and not head:  # "root modules"
            folder = PACKAGE
        elif head:  # a file or a link row: its names are paths of their own
            continue
        for span in INLINE.finditer(rest):
            name = _clean(span.group(2))
            if re.fullmatch(r"[\w.-]+\.(py|sh|md)|\w+/", name) and not (folder / name).exists():
                problems.append(f"{name} is not in {folder.relative_to(ROOT)}/")
    assert not problems, "README.md 'Where things are': " + "; ".join(problems)


def test_the_reading_order_names_functions_its_files_define():
    """`file.py` `name` pairs of the reading order: `name` (or `Class.method`) is defined in the file."""
    section = _section((ROOT / "README.md").read_text(encoding="utf-8"), "Where things are")
    assert "Where to start reading" in section, "expected the reading order in README.md 'Where things are'"
    reading = section.split("Where to start reading", 1)[1]
    pairs = []
    for item in re.split(r"^- ", reading, flags=re.M):  # one command's order per item
        spans = [m.group(2) for m in INLINE.finditer(item)]
        pairs += [(a, b) for a, b in zip(spans, spans[1:])
                  if a.endswith(".py") and re.fullmatch(r"\w+(\.\w+)?", b) and not b.endswith((".py", ".json"))]
    assert len(pairs) >= 10, f"expected the reading order's `file.py` `function` pairs, found {pairs}"
    problems = []
    for file_token, name in pairs:
        path = next((base / file_token for base in (PACKAGE, ROOT) if (base / file_token).is_file()), None)
        if path is None:
            problems.append(f"{file_token}: no such file")
            continue
        source = path.read_text(encoding="utf-8")
        for part in name.split("."):
            if not re.search(rf"^\s*(async\s+)?(def|class) {re.escape(part)}\b", source, re.M):
                problems.append(f"{file_token} defines no {part} (README reading order: `{name}`)")
    assert not problems, "\n".join(problems)


def test_the_readme_keeps_its_two_set_up_commands():
    """Set up holds exactly two commands: the main job, as scripts/wheel_check.sh runs it, and the
    checks, as .ci/run runs them."""
    section = re.search(r"^## Set up\n(.*?)(?=^## )", (ROOT / "README.md").read_text(encoding="utf-8"), re.S | re.M)
    assert section, "expected a section '## Set up' in README.md"
    commands = [block.strip() for block in re.findall(r"^```bash\n(.*?)^```", section.group(1), re.S | re.M)]
    assert len(commands) == 2, f"expected two set-up commands, got {commands}"
    main_job, checks = commands
    wheel_check = (ROOT / "scripts/wheel_check.sh").read_text(encoding="utf-8")
    job = main_job.split(".venv/bin/snapfusion-coreml ", 1)[-1]
    assert f'snapfusion-coreml" {job}' in wheel_check, f"scripts/wheel_check.sh does not run the README main job: {job}"
    assert checks in (ROOT / ".ci/run").read_text(encoding="utf-8"), f".ci/run does not run the README's checks: {checks}"
