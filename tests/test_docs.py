"""The README and docs as a newcomer uses them: every command shown names options and files that
exist, the README's fast commands run as written after the quick start, and no file in the
repository holds a path of the machine it was made on."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import click
import pytest

from satseg.cli import cli

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "exported_models" / "README.md"]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"}
LONG = re.compile(r"#.*\blong\b")
"""A command whose comment says 'long' takes minutes: its options and files are checked, it is not run."""


def blocks(path: Path, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", path.read_text(), re.S)


def shell_lines(path: Path) -> list[str]:
    """Commands of the bash blocks: continuations joined, one entry per `&&`-separated command."""
    out = []
    for block in blocks(path, "bash"):
        for line in block.replace("\\\n", " ").splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                out += [part.strip() for part in line.split(" && ")]
    return out


def inline_commands(path: Path) -> list[str]:
    """`satseg ...` and `python X.py ...` code spans in the prose (a span may wrap across lines)."""
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    return [" ".join(m.split()) for m in re.findall(r"`(satseg [^`]+|python [^`]*\.py[^`]*)`", text)]


def words(command: str) -> list[str]:
    return shlex.split(command, comments=True)


def check_satseg(argv: list[str], where: str):
    """The subcommand exists and takes every option given (placeholders such as DATA are fine)."""
    cmd, args = cli, argv[1:]
    while isinstance(cmd, click.Group) and args and not args[0].startswith("-"):
        assert args[0] in cmd.commands, f"{where}: no command {args[0]!r} in {' '.join(argv)}"
        cmd, args = cmd.commands[args[0]], args[1:]
    known = {o for p in cmd.params for o in getattr(p, "opts", []) + getattr(p, "secondary_opts", [])}
    known |= {"--help", "-h"}
    for a in args:
        opt = a.strip("[]").split("=")[0]
        if opt.startswith("--") and opt != "--":
            assert opt in known, f"{where}: {' '.join(argv[:2])} has no option {opt} ({' '.join(argv)})"


def check_script(argv: list[str], where: str):
    script = next(a for a in argv[1:] if a.endswith(".py"))
    path = ROOT / script
    assert path.is_file(), f"{where}: {script} does not exist"
    source = path.read_text()
    for _ in range(2):  # options may come from a sibling module the script imports (benchmarks/results.py)
        for mod in set(re.findall(r"^from (\w+) import", source, re.M)):
            if (path.parent / f"{mod}.py").is_file():
                source += (path.parent / f"{mod}.py").read_text()
    for a in argv[argv.index(script) + 1:]:
        opt = a.strip("[]").split("=")[0]
        if opt.startswith("--") and opt != "--help":
            assert f'"{opt}"' in source, f"{where}: {script} has no option {opt}"


ALL_COMMANDS = [(p, c) for p in DOCS for c in shell_lines(p) + inline_commands(p)]


@pytest.mark.parametrize("path, command", ALL_COMMANDS, ids=[f"{p.name}:{c[:60]}" for p, c in ALL_COMMANDS])
def test_every_command_shown_names_real_options_and_scripts(path, command):
    argv = words(command)
    where = path.relative_to(ROOT)
    if not argv:
        return
    if argv[0] == "satseg":
        check_satseg(argv, where)
    elif argv[0] == "python" and any(a.endswith(".py") for a in argv):
        check_script(argv, where)
    assert ">" not in argv or argv[0] not in ("satseg", "python"), f"{where}: write through --out, not a redirection"


def test_docs_link_to_files_that_exist():
    for path in DOCS:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", path.read_text()):
            assert (path.parent / target).exists(), f"{path.relative_to(ROOT)}: links to missing {target}"


def test_readme_is_short():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 160


def test_no_file_holds_a_path_of_the_machine_it_was_made_on():
    """No tracked text file names a machine's folders; shipped results (exported_models/, the
    default model) name no temporary folder either: their paths are relative or placeholders."""
    machine = re.compile(rb"(?<![\w.])/(?:work|root|home|Users|check|mnt/data)/[\w.-]")
    scratch = re.compile(rb"(?<![\w.])/(?:tmp|var/tmp|var/folders)/[\w.-]")
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout.split(b"\0")
    if not files or files == [b""]:
        pytest.skip("not a git checkout")
    bad = []
    for name in filter(None, files):
        p = ROOT / name.decode()
        if not p.is_file() or p.stat().st_size > 5_000_000 or p.name == "test_docs.py":
            continue
        data = p.read_bytes()
        if b"\0" in data[:4096]:
            continue  # binary (models, images)
        shipped = name.startswith((b"exported_models/", b"satseg/default_model/"))
        if machine.search(data) or (shipped and scratch.search(data)):
            bad.append(name.decode())
    assert not bad, f"absolute paths in {bad}"


@pytest.fixture(scope="module")
def after_quick_start(tmp_path_factory):
    """A stand-in for the clone after the quick start's `satseg demo` (smaller: 1 epoch, 4 scenes, 64 px)."""
    home = tmp_path_factory.mktemp("newcomer")
    for name in ("satseg", "examples", "exported_models"):  # the clone, without writing into it
        (home / name).symlink_to(ROOT / name)
    env = {k: v for k, v in ENV.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # as a user runs it
    r = subprocess.run([sys.executable, "-m", "satseg", "demo", "--out", "satseg-demo", "--epochs", "1", "--images",
                        "4", "--patch-size", "64"], cwd=home, capture_output=True, text=True, env=env, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    return home, r


@pytest.mark.slow
def test_demo_runs_the_main_job_end_to_end_quietly(after_quick_start):
    """No TensorFlow start-up lines, no signature dumps, short lines; every promised file."""
    home, r = after_quick_start
    lines = (r.stdout + r.stderr).splitlines()
    assert len(lines) < 60, lines
    assert max(map(len, lines)) <= 160
    for noise in ("I0000", "E0000", "oneDNN", "cuInit", "Captures:", "Saved artifact", "XNNPACK", "Warning"):
        assert noise not in r.stdout + r.stderr, noise
    for f in ("teacher/model.keras", "student/model.keras", "export/model_int8.tflite", "export/report.json",
              "evaluate/evaluate.json", "evaluate/predictions.png"):
        assert (home / "satseg-demo" / f).exists(), f
    assert "[5/5]" in r.stdout and "mean IoU" in r.stdout


def readme_runnable() -> list[str]:
    out = []
    for line in shell_lines(ROOT / "README.md"):
        argv = words(line)
        placeholder = any(re.fullmatch(r"[A-Z][A-Z_]{2,}", a) for a in argv)  # DATA: the reader's own folder
        if argv and not LONG.search(line) and not placeholder and (argv[0] == "satseg" and argv[1:2] != ["demo"]
                                                or argv[:2] == ["python", "examples/edge_inference.py"]):
            out.append(line)
    return out


@pytest.mark.slow
def test_readme_commands_run_as_written_after_the_quick_start(after_quick_start):
    home = after_quick_start[0]
    lines = readme_runnable()
    assert len(lines) >= 5, lines
    for line in lines:
        argv = words(line)
        argv = [sys.executable, "-m", "satseg", *argv[1:]] if argv[0] == "satseg" else \
            [sys.executable, str(ROOT / argv[1]), *argv[2:]]
        r = subprocess.run(argv, cwd=home, capture_output=True, text=True, env=ENV, timeout=600)
        assert r.returncode == 0, f"README: {line}\n{r.stderr[-2000:]}"


@pytest.mark.slow
def test_readme_python_runs_as_written_after_the_quick_start(after_quick_start):
    for code in blocks(ROOT / "README.md", "python"):
        r = subprocess.run([sys.executable, "-c", code], cwd=after_quick_start[0], capture_output=True, text=True,
                           env=ENV, timeout=300)
        assert r.returncode == 0, f"README python block:\n{code}\n{r.stderr[-2000:]}"


def test_generated_tables_are_what_the_generator_writes(capsys, tmp_path, monkeypatch):
    """README's zoo table, the model cards, index.json and docs/speed.md's tables are generated by
    tools/model_cards.py from the JSON in exported_models/: committed as generated, never retyped
    (and the same from any working directory)."""
    monkeypatch.chdir(tmp_path)
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import model_cards
    finally:
        sys.path.pop(0)
    model_cards.main(["--dry-run"])
    stale = [line for line in capsys.readouterr().out.splitlines() if "would write" in line]
    assert not stale, f"out of date (run python tools/model_cards.py): {stale}"


def test_distillation_tables_in_the_docs_are_the_studys():
    """docs/distillation.md shows what benchmarks/distillation_study.py generated from its runs' JSON."""
    import json

    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import distillation_study
    finally:
        sys.path.pop(0)
    text = (ROOT / "docs" / "distillation.md").read_text()
    for path in sorted((ROOT / "exported_models").glob("distillation_*.json")):
        doc = json.loads(path.read_text())
        mark = f"<!-- study:{doc['study']} -->"
        block = text.split(mark)[1].strip()
        assert block == distillation_study.table(doc), f"docs/distillation.md is not {path.name}'s table"
