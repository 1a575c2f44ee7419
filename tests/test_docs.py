"""README, man pages and completions agree with the CLI's own --help."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import typer

from asrmerge.cli.main import app
from tests.conftest import ROOT

GROUP = typer.main.get_command(app)
COMMANDS = sorted(GROUP.commands)
README = (ROOT / "README.md").read_text()


def options(cmd: str) -> list[str]:
    command = GROUP.commands[cmd]
    return [o for p in command.params if p.param_type_name == "option" for o in p.opts + p.secondary_opts]


def man(name: str) -> tuple[str, str]:
    md = (ROOT / "man" / f"{name}.1.md").read_text()
    roff = (ROOT / "man" / f"{name}.1").read_text().replace("\\-", "-").replace("\\f[B]", "").replace("\\f[R]", "")
    return md, roff


@pytest.mark.parametrize("cmd", COMMANDS)
def test_every_option_is_in_the_man_page(cmd: str) -> None:
    md, roff = man(f"asrmerge-{cmd}")
    for opt in options(cmd):
        assert re.search(rf"\*\*{re.escape(opt)}\*\*", md), f"{opt} missing from man/asrmerge-{cmd}.1.md"
        assert re.search(rf"(?<![\w-]){re.escape(opt)}(?![\w-])", roff), f"{opt} missing from man/asrmerge-{cmd}.1 (run bin/gen-man)"


@pytest.mark.parametrize("cmd", COMMANDS)
def test_every_command_and_option_is_in_the_readme(cmd: str) -> None:
    section = README.split(f"### `asrmerge {cmd}`", 1)
    assert len(section) == 2, f"README has no section for asrmerge {cmd}"
    body = section[1].split("\n### ", 1)[0]
    for opt in options(cmd):
        if opt in ("-h", "--help"):
            continue
        assert re.search(rf"`[^`]*(?<![\w-]){re.escape(opt)}(?![\w-])", body), f"README section {cmd} lacks {opt}"


def readme_option_list(cmd: str) -> set[str]:
    """The options the "Options:" paragraph of README's section on ``cmd`` lists."""
    body = README.split(f"### `asrmerge {cmd}`", 1)[1].split("\n### ", 1)[0]
    found = re.search(r"^Options: (.*?)(?:\n\n|\n#|\Z)", body, re.S | re.M)
    assert found, f"README section {cmd} has no Options: paragraph"
    return set(re.findall(r"(?<![\w-])(--?[a-z][\w-]*)", found.group(1)))


def man_option_list(cmd: str) -> set[str]:
    """The options the OPTIONS section of asrmerge-CMD(1) has an entry for."""
    md, _ = man(f"asrmerge-{cmd}")
    section = md.split("\n# OPTIONS\n", 1)
    assert len(section) == 2, f"man/asrmerge-{cmd}.1.md has no OPTIONS section"
    body = section[1].split("\n# ", 1)[0]
    heads = [line for line in body.splitlines() if line.startswith("**-")]
    return {o for line in heads for o in re.findall(r"\*\*(--?[\w-]+)\*\*", line)}


@pytest.mark.parametrize("cmd", COMMANDS)
def test_readme_option_lists_match_help_both_ways(cmd: str) -> None:
    """README's "Options:" line of each command lists exactly the options of its --help."""
    want, have = set(options(cmd)), readme_option_list(cmd)
    assert not want - have, f"README's Options: line for {cmd} lacks {sorted(want - have)}"
    assert not have - want, f"README's Options: line for {cmd} lists {sorted(have - want)}, which --help lacks"


@pytest.mark.parametrize("cmd", COMMANDS)
def test_man_option_entries_match_help_both_ways(cmd: str) -> None:
    """The OPTIONS section of each man page has an entry for exactly the options of its --help."""
    want, have = {*options(cmd), "-h", "--help"}, man_option_list(cmd)
    assert not want - have, f"man/asrmerge-{cmd}.1.md OPTIONS lacks {sorted(want - have)}"
    assert not have - want, f"man/asrmerge-{cmd}.1.md OPTIONS has {sorted(have - want)}, which --help lacks"


def test_main_page_lists_every_command() -> None:
    md, roff = man("asrmerge")
    for cmd in COMMANDS:
        assert f"**asrmerge-{cmd}**(1)" in md
        assert (ROOT / "man" / f"asrmerge-{cmd}.1").is_file()
    for code in ("**0**", "**1**", "**2**", "**3**", "**130**"):
        assert code in md


def test_man_pages_are_built_from_their_markdown() -> None:
    for md in (ROOT / "man").glob("*.1.md"):
        assert md.with_suffix("").is_file(), f"{md.name} has no built page; run bin/gen-man"


def man_env() -> dict[str, str]:
    """man(1) formatting for a test: 80 columns, plain text, no pager, no MANPATH of the caller's."""
    import shutil

    assert shutil.which("man"), "man is not installed: apt-get install man-db (bin/bootstrap installs it)"
    env = {k: v for k, v in os.environ.items() if k not in ("MANPATH", "MANPAGER", "PAGER", "MANOPT")}
    return {**env, "MANWIDTH": "80", "LC_ALL": "C.UTF-8", "MAN_KEEP_FORMATTING": ""}


@pytest.mark.parametrize("page", sorted(p.name for p in (ROOT / "man").glob("*.1")))
def test_man_pages_render_without_artefacts(page: str) -> None:
    """Each page through man -l: no troff warning, and no '~' runs (pandoc's math from a '$...$' pair)."""
    r = subprocess.run(["man", "--warnings", "-l", str(ROOT / "man" / page)], capture_output=True, text=True,
                       env=man_env())
    assert r.returncode == 0 and r.stdout, r.stderr
    assert r.stderr == "", f"{page}: {r.stderr}"
    runs = re.findall(r"\S*(?:\w~\w|~[^\s~/]+~)\S*", r.stdout)
    assert not runs, f"{page}: {runs}"
    if page == "asrmerge-transcribe.1":
        assert "cuda:$LOCAL_RANK under torchrun" in " ".join(r.stdout.split())


@pytest.mark.slow
def test_man_pages_install_with_the_package(tmp_path) -> None:
    """pip install puts the pages in PREFIX/share/man/man1, where man finds them from PREFIX/bin on PATH."""
    import importlib.util
    import shutil

    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src)
    for folder in ("asrmerge", "man"):
        shutil.copytree(ROOT / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__"))
    prefix = tmp_path / "prefix"
    isolation = ["--no-build-isolation"] if importlib.util.find_spec("setuptools") else []
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--disable-pip-version-check",
                        *isolation, "--prefix", str(prefix), str(src)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (prefix / "bin" / "asrmerge").is_file()
    env = {**man_env(), "PATH": f"{prefix / 'bin'}:/usr/bin:/bin"}
    for page in ("asrmerge", "asrmerge-transcribe", "asrmerge-merge"):
        r = subprocess.run(["man", "-w", page], capture_output=True, text=True, env=env)
        assert r.returncode == 0, f"man -w {page}: {r.stderr}"
        assert r.stdout.strip() == str(prefix / "share" / "man" / "man1" / f"{page}.1")


def load_script(name: str):
    import importlib.machinery
    import importlib.util

    loader = importlib.machinery.SourceFileLoader(name.replace("-", "_"), str(ROOT / "bin" / name))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


def test_merge_page_lists_the_registry() -> None:
    """The ALGORITHMS section of the merge page is what bin/gen-man generates from the registry now."""
    md = (ROOT / "man" / "asrmerge-merge.1.md").read_text()
    assert load_script("gen-man").fill(md) == md, "run bin/gen-man"
    from asrmerge.merge.registry import REGISTRY, names

    for name in names():
        assert f"**{name}**" in md
        for p in REGISTRY[name].params:
            assert f"**{p.name}**=*{p.describe_default()}*" in md


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts_are_current(shell: str) -> None:
    mod = load_script("gen-completions")
    assert (ROOT / "completions" / f"asrmerge.{shell}").read_text() == mod.script(shell), "run bin/gen-completions"


def complete(words: str) -> list[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "_ASRMERGE_COMPLETE": "complete_bash",
           "COMP_WORDS": words, "COMP_CWORD": str(len(words.split(" ")) - 1)}
    code = "import sys; sys.argv[0] = 'asrmerge'; from asrmerge.cli.main import main; main()"
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    return r.stdout.split()


@pytest.mark.parametrize("cmd", COMMANDS)
def test_tab_completes_every_option(cmd: str) -> None:
    got = set(complete(f"asrmerge {cmd} --"))
    want = {o for o in options(cmd) if o.startswith("--")}
    assert want <= got, want - got


def test_tab_completes_commands_and_choices() -> None:
    assert set(COMMANDS) <= set(complete("asrmerge "))
    assert complete("asrmerge taskvec --dtype ") == ["fp32", "fp16", "bf16", "fp64"]
    assert complete("asrmerge merge --algo ts") == ["tsvm", "tsvm-ns"]
