"""Every code block of README.md and docs/**/*.md runs as pasted.

- A ```python block runs in a fresh namespace in this process, with its stdout captured. On a
  machine without CUDA, tests/conftest.py has set TRITON_INTERPRET=1 before triton is imported (as
  .ci/run does), so the blocks' CPU tensors run the real Triton kernels in Triton's interpreter.
- A ```text block right after a python block, marked `<!-- doc-example: output -->` on the line
  before its fence, is that block's printed output: it must match exactly when the kernels run in
  the interpreter (the docs say so where they show one; on a GPU machine CPU tensors take the torch
  fallback, so there the comparison is skipped with that reason). `<!-- doc-example: output approximate -->`
  compares the same way except for rounding noise: numbers in e-notation and a worst element's
  position and values, which differ between CPUs (their BLAS kernels sum in other orders).
- `<!-- doc-example: torchrun N -->` on the line before a python fence: a torch.distributed script,
  run as `torchrun --nproc-per-node N` (gloo on the CPU) in a subprocess; its output is compared
  the same way.
- `<!-- doc-example: skip REASON -->` on the line before a python fence: the block is not run, and
  its test is skipped with REASON. Keep these rare (a block that needs CUDA, say).
- ```bash blocks are not run, but every `python -m benchmarks COMMAND --flag ...` and
  `python -m kernels.testing --flag ...` in them must name a registered command and flags that its
  `--help` lists, so the docs cannot drift from the command line.
"""
import contextlib
import importlib
import io
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]

FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>[\w+-]*)\s*$")
MARKER = re.compile(r"^\s*<!--\s*doc-example:\s*(?P<kind>skip|output|torchrun)\b\s*(?P<reason>.*?)\s*-->\s*$")


@dataclass
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    marker: str | None  # "skip" / "output" / None
    reason: str

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def read_blocks(path: Path) -> list[Block]:
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent, start = len(opening["indent"]), i
        body = []
        i += 1
        while i < len(lines) and not (FENCE.match(lines[i]) and not FENCE.match(lines[i])["lang"]):
            body.append(lines[i][indent:] if lines[i].startswith(" " * indent) else lines[i].lstrip())
            i += 1
        if i == len(lines):
            raise AssertionError(f"{path}:{start + 1}: code block never closed")
        previous = lines[start - 1] if start > 0 else ""
        marker = MARKER.match(previous)
        blocks.append(
            Block(
                path=path,
                line=start + 1,
                lang=opening["lang"],
                code="\n".join(body) + "\n",
                marker=marker["kind"] if marker else None,
                reason=marker["reason"] if marker else "",
            )
        )
        i += 1
    return blocks


ALL_BLOCKS = [block for path in DOC_FILES for block in read_blocks(path)]


def _python_cases():
    cases = []
    for path in DOC_FILES:
        blocks = read_blocks(path)
        for index, block in enumerate(blocks):
            if block.lang != "python":
                continue
            following = blocks[index + 1] if index + 1 < len(blocks) else None
            expected = following if following and following.marker == "output" else None
            cases.append(pytest.param(block, expected, id=block.id))
    return cases


PYTHON_CASES = _python_cases()


def test_the_docs_have_python_examples():
    assert len(PYTHON_CASES) >= 10, [case.id for case in PYTHON_CASES]


def test_every_block_is_labelled_and_every_marker_applies():
    """An unlabelled fence would neither run nor be highlighted; a marker must sit where it acts."""
    for block in ALL_BLOCKS:
        assert block.lang, f"{block.id}: give the code block a language (python, bash, text)"
        if block.marker == "skip":
            assert block.lang == "python" and block.reason, f"{block.id}: `skip` needs a python block and a reason"
        if block.marker == "torchrun":
            assert block.lang == "python" and block.reason.isdigit(), f"{block.id}: `torchrun N` needs a python block"
        if block.marker == "output":
            assert block.lang == "text", f"{block.id}: an `output` block must be ```text"
            assert block.reason in ("", "approximate"), f"{block.id}: `output` takes no reason but `approximate`"
    for path in DOC_FILES:
        blocks = read_blocks(path)
        for before, block in zip([None, *blocks], blocks):
            if block.marker == "output":
                assert before is not None and before.lang == "python", f"{block.id}: output of no python block"


# What an `output approximate` block does not compare: e-notation numbers, "[i, j, k]: a -> b" worst elements.
ROUNDING_NOISE = re.compile(r"-?\d+(?:\.\d+)?e[-+]\d+|\[\d+(?:, \d+)*\]: \S+ -> \S+")


def _strip(text: str, approximate: bool = False) -> str:
    if approximate:
        text = ROUNDING_NOISE.sub("~", text)
    return "\n".join(" ".join(line.split()) if approximate else line.rstrip() for line in text.strip("\n").splitlines())


def test_approximate_outputs_ignore_only_rounding_noise():
    printed = "norm  LayerNorm  4.77e-07  1.93e-08  [0, 3, 53]: 2.60292 -> 2.60292\nPASS 0.00093"
    documented = "norm  LayerNorm  4.77e-07  1.82e-08  [1, 48, 74]: 1.2007 -> 1.20069\nPASS 0.00093"
    assert _strip(printed, approximate=True) == _strip(documented, approximate=True)
    assert _strip(printed, approximate=True) != _strip(documented.replace("PASS", "FAIL"), approximate=True)
    assert _strip(printed, approximate=True) != _strip(documented.replace("LayerNorm", "Linear"), approximate=True)
    assert _strip(printed) != _strip(documented)


@pytest.mark.parametrize(("block", "expected"), PYTHON_CASES)
def test_python_block_runs(block: Block, expected: Block | None, monkeypatch, tmp_path):
    if block.marker == "skip":
        pytest.skip(f"{block.id} not run: {block.reason}")
    monkeypatch.chdir(ROOT)
    if block.marker == "torchrun":
        printed = _torchrun(block, int(block.reason), tmp_path)
        return _compare(block, printed, expected)
    stdout = io.StringIO()
    namespace = {"__name__": "__main__", "__file__": str(block.path)}
    with contextlib.redirect_stdout(stdout):
        exec(compile(block.code, block.id, "exec"), namespace)  # an exception fails the test
    _compare(block, stdout.getvalue(), expected)


def _torchrun(block: Block, processes: int, folder: Path) -> str:
    script = folder / "example.py"
    script.write_text(block.code)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(processes), str(script)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, f"{block.id} failed under torchrun:\n{run.stdout}\n{run.stderr[-3000:]}"
    return run.stdout


def _compare(block: Block, printed: str, expected: Block | None) -> None:
    print(printed)
    if expected is None:
        return
    if os.environ.get("TRITON_INTERPRET") != "1":
        pytest.skip(f"{block.id}: ran; its documented output is the interpreter's (TRITON_INTERPRET=1), not compared")
    approximate = expected.reason == "approximate"
    assert _strip(printed, approximate) == _strip(expected.code, approximate), (
        f"{block.id}: the documented output is not what the block prints")


# The command lines the docs show: `python -m benchmarks COMMAND ...` and `python -m kernels.testing ...`.
CLI_CALL = re.compile(r"python -m (?P<module>benchmarks|kernels\.testing)(?![\w.])(?P<rest>.*)")
CLI_MAINS = {"benchmarks": "benchmarks.__main__", "kernels.testing": "kernels.testing.__main__"}


def _cli_calls():
    """{(module, subcommand or None): [(where, flags), ...]} from every bash block."""
    calls = {}
    for block in ALL_BLOCKS:
        if block.lang != "bash":
            continue
        for offset, line in enumerate(block.code.splitlines(), start=1):
            match = CLI_CALL.search(line.split(" #")[0])
            if not match:
                continue
            rest = re.split(r"&&|;|\|\|", match["rest"])[0]
            words = rest.split()
            has_commands = match["module"] == "benchmarks"
            command = words[0] if has_commands and words and re.fullmatch(r"[a-z][\w-]*", words[0]) else None
            flags = sorted(set(re.findall(r"(?<![\w-])--[a-z][\w-]*", rest)))
            calls.setdefault((match["module"], command), []).append((f"{block.id}+{offset}", flags))
    return calls


CLI_CALLS = _cli_calls()


def _help(module: str, argv: list[str]) -> str:
    main = importlib.import_module(CLI_MAINS[module]).main
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 0, f"python -m {module} {' '.join(argv)} exited {stop.value.code}"
    return out.getvalue()


@pytest.mark.parametrize("call", sorted(CLI_CALLS, key=str), ids=lambda call: " ".join(filter(None, call)))
def test_documented_commands_exist(call):
    """Each `python -m benchmarks ...` / `python -m kernels.testing ...` line of the docs names a real
    command and real flags, so the docs cannot drift from the command line."""
    module, command = call
    text = _help(module, [command, "--help"] if command else ["--help"])
    for where, flags in CLI_CALLS[call]:
        missing = [flag for flag in flags if flag not in text]
        assert not missing, f"{where}: `python -m {module} {command or ''}` has no {missing}"


REPO_PATH = re.compile(
    r"`(?P<path>(?:kernels|reference|benchmarks|tests|docs|\.ci)/[\w./-]*|[\w-]+\.(?:py|md|toml|yml|txt))`"
)
GENERATED_OR_EXAMPLE = {"bench-out/", "DIR/"}
NAMED_BECAUSE_ABSENT = {"kernels/attention/"}  # the design page explains why the family is kernels/sdpa/


def test_every_file_path_in_the_docs_exists():
    """A path such as `kernels/sdpa/triton/decode.py` in the prose must survive layout moves."""
    missing = []
    for path in DOC_FILES:
        text = path.read_text(encoding="utf-8")
        for match in REPO_PATH.finditer(text):
            name = match["path"]
            if "<" in name or "*" in name or any(name.startswith(g) for g in GENERATED_OR_EXAMPLE):
                continue
            if name in NAMED_BECAUSE_ABSENT:
                continue
            if "/" not in name.rstrip("/"):  # a bare file name, in a table of one folder's files
                found = (ROOT / name).exists() or any(
                    any((ROOT / folder).glob(f"**/{name}")) for folder in ("kernels", "reference", "benchmarks", "tests")
                )
            else:
                found = (ROOT / name).exists()
            if not found:
                line = text.count("\n", 0, match.start()) + 1
                missing.append(f"{path.relative_to(ROOT)}:{line}: {name}")
    assert not missing, "paths that do not exist:\n" + "\n".join(missing)


def test_the_readme_stays_a_front_page():
    """What the project is, the two commands, features, numbers, links: the rest belongs in docs/."""
    lines = (ROOT / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= 250, f"README.md has {lines} lines; move detail into docs/"


def _anchors(markdown_file: Path) -> set[str]:
    """The heading ids mkdocs (Python-Markdown's toc) and GitHub give a page's headings."""
    anchors = set()
    for line in markdown_file.read_text(encoding="utf-8").splitlines():
        heading = re.match(r"#{1,6}\s+(.*)", line)
        if heading:
            text = re.sub(r"[^\w\s-]", "", heading[1].replace("`", "")).strip().lower()
            anchors.add(re.sub(r"[\s-]+", "-", text))
    return anchors


def test_the_readme_links_resolve():
    """mkdocs --strict checks the links inside docs/; the README is not part of the site."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+://", target):
            continue
        path, _, anchor = target.partition("#")
        file = ROOT / path if path else ROOT / "README.md"
        if not file.exists():
            broken.append(f"{target}: no such file")
        elif anchor and anchor not in _anchors(file):
            broken.append(f"{target}: no heading #{anchor}")
    assert not broken, broken
