"""docs/algorithms.md, the algorithm registry (``merge --list --json``) and ``man asrmerge-merge`` agree.

Conventions of docs/algorithms.md that this file relies on (section 0 states them for writers):

- an algorithm's section is a numbered subsection of 4, 5 or 6 whose heading names the algorithm in
  backquotes (``### 5.3 `dare-ta`, `dare-ties` - DARE``); backquoted words in those headings are
  algorithm names and nothing else; the subsections in :data:`SHARED` are about several algorithms and
  name none;
- its parameters are in a table introduced by ``**Parameters** of `NAME`[ and `NAME`]:``, one row per
  parameter: ``| `name` | `default` | `accepted` | meaning | default from |``, where ``accepted`` is the
  interval, or every choice in backquotes (``true``, ``false`` for a bool).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import pytest

from asrmerge.merge.registry import REGISTRY, names
from tests.conftest import ROOT, cli

DOC_PATH = ROOT / "docs" / "algorithms.md"
DOC = DOC_PATH.read_text()
MAN_MD = (ROOT / "man" / "asrmerge-merge.1.md").read_text()
MAN_ROFF = (ROOT / "man" / "asrmerge-merge.1").read_text().replace("\\-", "-")
SHARED = ("6.5",)  # subsections of 4-6 that are no algorithm's section (6.5: LoRA inputs in core space)
HEADING = re.compile(r"^(#{2,4}) (\d+(?:\.\d+)*)\.? (.*)$")
LABEL = re.compile(r"^\*\*Parameters\*\* of (?P<names>[^:]+):(?P<rest>.*)$")


def ticks(text: str) -> list[str]:
    """The backquoted words of ``text``, in order."""
    return re.findall(r"`([^`]*)`", text)


@dataclass
class Section:
    number: str
    title: str
    lines: list[str] = field(default_factory=list)

    @property
    def algorithms(self) -> list[str]:
        return ticks(self.title) if self.is_algorithm_section else []

    @property
    def is_algorithm_section(self) -> bool:
        top, _, sub = self.number.partition(".")
        return top in ("4", "5", "6") and sub != "" and self.number not in SHARED


def sections(text: str) -> list[Section]:
    """Every numbered heading of the document with the lines up to the next heading."""
    out: list[Section] = []
    in_code = False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            in_code = not in_code
        m = None if in_code else HEADING.match(line)
        if m:
            out.append(Section(m.group(2), m.group(3)))
        elif out:
            out[-1].lines.append(line)
    return out


SECTIONS = sections(DOC)
ALGO_SECTIONS = [s for s in SECTIONS if s.is_algorithm_section]


@dataclass
class Table:
    algorithms: list[str]
    rows: list[list[str]]  # the cells of each body row
    line: str


def tables(section: Section) -> list[Table]:
    """The ``**Parameters** of ...`` tables of a section (an empty row list where the label says none)."""
    out = []
    lines = section.lines
    for i, line in enumerate(lines):
        m = LABEL.match(line)
        if not m:
            continue
        rows = []
        j = i + 1
        while j < len(lines) and not lines[j].strip():
            j += 1
        body = []
        while j < len(lines) and lines[j].startswith("|"):
            body.append(lines[j])
            j += 1
        for k, row in enumerate(body):
            if k < 2:  # header and separator
                continue
            rows.append([c.strip() for c in row.strip().strip("|").split("|")])
        out.append(Table(ticks(m.group("names")), rows, line))
    return out


@pytest.fixture(scope="module")
def listing() -> dict[str, dict[str, Any]]:
    """``asrmerge merge --list --json`` from a real process, by algorithm name."""
    r = cli("merge", "--list", "--json")
    assert r.returncode == 0, r.stderr.decode()
    return {a["name"]: a for a in json.loads(r.stdout)}


def accepted(p: dict[str, Any]) -> list[str]:
    """What the parameter's 'accepts' cell must hold, in order."""
    if isinstance(p["accepts"], list):
        return p["accepts"]
    if p["accepts"]:
        return [p["accepts"]]
    return ["true", "false"] if p["type"] == "bool" else [p["type"]]


def test_the_listing_is_the_registry(listing: dict[str, dict[str, Any]]) -> None:
    assert list(listing) == names()
    for name, algo in listing.items():
        params = REGISTRY[name].params
        assert [p["name"] for p in algo["params"]] == [p.name for p in params], name
        for shown, p in zip(algo["params"], params, strict=True):
            assert shown["default"] == p.describe_default(), (name, p.name)


def test_the_numbered_sections_are_the_ones_citations_use() -> None:
    """Sections 0-10 in order; subsections numbered 1, 2, ... within each; the cited ones all present."""
    numbers = [s.number for s in SECTIONS]
    assert [n for n in numbers if "." not in n] == [str(i) for i in range(11)]
    for top in {n.split(".")[0] for n in numbers}:
        subs = [int(n.split(".")[1]) for n in numbers if n.startswith(top + ".")]
        assert subs == list(range(1, len(subs) + 1)), f"section {top}: subsections {subs}"
    cited = {"4.1", "4.2", "4.3", "4.4", "5.1", "5.2", "5.3", "5.4", "5.5", "6.1", "6.2", "6.3", "6.4", "6.5",
             "8.1", "8.2", "8.3", "8.4"}
    assert cited <= set(numbers), sorted(cited - set(numbers))
    items = re.findall(r"^(\d+)\. \*\*", "\n".join(next(s for s in SECTIONS if s.number == "7").lines), re.M)
    assert items == [str(i) for i in range(1, 15)], "section 7 numbers its invariants 1-14 (cited as 7.N)"


def test_every_citation_in_the_repository_resolves_inside_it() -> None:
    """Code, tests, man pages, README and docs cite the reference as "docs/algorithms.md section N[.M]" (7.N for
    an invariant), and nothing outside the repository (the spec files this project was built from)."""
    import subprocess

    tracked = subprocess.run(["git", "ls-files", "asrmerge", "tests", "man", "README.md", "bin", "docs"],
                             cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    numbers = {s.number for s in SECTIONS} | {f"7.{i}" for i in range(1, 15)}
    cites = re.compile(r"docs/algorithms\.md,? sections? (\d+(?:\.\d+)?)(?:(?:,| and) (\d+(?:\.\d+)?))?")
    found, outside = 0, []
    for rel in tracked:
        path = ROOT / rel
        if rel.startswith("tests/bench/results/") or path.suffix not in {".py", ".md", ".1", ""} or not path.is_file():
            continue
        text = path.read_text(errors="replace")
        outside += [f"{rel}: {m}" for m in re.findall(r"\b(?:ALGORITHMS|STYLE|ASSETS)\.md\b|" + "/work" + "/shared", text)]
        for m in cites.finditer(text):
            for number in filter(None, m.groups()):
                found += 1
                assert number in numbers, f"{rel}: cites docs/algorithms.md section {number}, which does not exist"
    assert outside == [], outside
    assert found > 50  # the code cites the reference throughout


def test_every_algorithm_has_one_section_and_every_section_a_registered_algorithm() -> None:
    registered = set(names())
    seen: dict[str, str] = {}
    for s in ALGO_SECTIONS:
        assert s.algorithms, f"section {s.number} ({s.title}) names no algorithm in backquotes"
        for name in s.algorithms:
            assert name in registered, f"section {s.number} names {name!r}, which asrmerge merge does not register"
            assert name not in seen, f"{name} has two sections: {seen[name]} and {s.number}"
            seen[name] = s.number
    assert sorted(seen) == sorted(registered), f"no section for {sorted(registered - set(seen))}"
    for s in SECTIONS:
        if not s.is_algorithm_section:
            assert not set(ticks(s.title)) & registered, f"heading {s.number} names an algorithm outside 4-6"


@pytest.mark.parametrize("name", names())
def test_every_parameter_is_in_its_section_with_its_default_and_range(name: str,
                                                                      listing: dict[str, dict[str, Any]]) -> None:
    section = next(s for s in ALGO_SECTIONS if name in s.algorithms)
    mine = [t for t in tables(section) if name in t.algorithms]
    assert len(mine) == 1, f"section {section.number} needs one '**Parameters** of `{name}`:' table, has {len(mine)}"
    table = mine[0]
    assert set(table.algorithms) <= set(section.algorithms), table.line
    params = listing[name]["params"]
    if not params:
        assert not table.rows, f"{name} takes no parameters, but its table lists {[r[0] for r in table.rows]}"
        return
    rows: dict[str, list[str]] = {}
    for cells in table.rows:
        assert len(cells) == 5, f"section {section.number}: a parameter row has 5 cells (no '|' inside): {cells}"
        (pname,) = ticks(cells[0])
        assert pname not in rows, f"section {section.number} lists {pname} twice for {name}"
        rows[pname] = cells
        owners = [a for a in table.algorithms if pname in {p["name"] for p in listing[a]["params"]}]
        assert owners, f"section {section.number} lists {pname!r}, a parameter of none of {table.algorithms}"
    for p in params:
        assert p["name"] in rows, f"section {section.number} lacks {name}'s parameter {p['name']}"
        cells = rows[p["name"]]
        assert ticks(cells[1]) == [p["default"]], f"{name} {p['name']}: default {cells[1]} vs --list {p['default']}"
        assert ticks(cells[2]) == accepted(p), f"{name} {p['name']}: accepts {cells[2]} vs --list {accepted(p)}"
        assert cells[3], f"{name} {p['name']}: the meaning cell is empty"


def test_shared_rows_agree_for_every_algorithm_of_a_table(listing: dict[str, dict[str, Any]]) -> None:
    """A table naming two algorithms (tsvm and tsvm-ns) holds for both: a shared row has one default."""
    for s in ALGO_SECTIONS:
        for t in tables(s):
            for cells in t.rows:
                (pname,) = ticks(cells[0])
                shown = {listing[a]["params"][i]["default"] for a in t.algorithms
                         for i, p in enumerate(listing[a]["params"]) if p["name"] == pname}
                assert len(shown) == 1, f"section {s.number}: {pname} has defaults {shown} across {t.algorithms}"


@pytest.mark.parametrize("name", names())
def test_the_man_page_points_each_algorithm_at_its_section(name: str) -> None:
    number = next(s.number for s in ALGO_SECTIONS if name in s.algorithms)
    entry = re.search(rf"^\*\*{re.escape(name)}\*\* \(.*\n:   (.*)$", MAN_MD, re.M)
    assert entry, f"man/asrmerge-merge.1.md has no entry for {name} (run bin/gen-man)"
    assert entry.group(1).endswith(f"see docs/algorithms.md section {number}."), entry.group(1)
    roff = " ".join(MAN_ROFF.split())
    assert f"see docs/algorithms.md section {number}." in roff, "run bin/gen-man"


def test_gen_man_finds_the_same_sections() -> None:
    from tests.test_docs import load_script

    found = load_script("gen-man").reference_sections(DOC)
    assert {n: found[n] for n in names()} == {n: next(s.number for s in ALGO_SECTIONS if n in s.algorithms)
                                               for n in names()}


def test_what_the_reference_names_exists() -> None:
    """Files, modules and tests the reference points at are in the repository; nothing outside it is cited."""
    for path in sorted(set(re.findall(r"`((?:asrmerge|tests|bin|man|docs)/[\w./-]*)`", DOC))):
        assert (ROOT / path).exists(), f"docs/algorithms.md names {path}, which does not exist"
    sources = "\n".join(p.read_text() for p in sorted((ROOT / "tests").rglob("test_*.py")))
    for test in sorted(set(re.findall(r"`(test_\w+)`", DOC))):
        assert re.search(rf"^def {test}\b", sources, re.M), f"docs/algorithms.md names {test}, which no test defines"
    repo_md = {p.name for p in ROOT.rglob("*.md") if ".git" not in p.parts}
    for md in sorted(set(re.findall(r"[\w-]+\.md\b", DOC))):
        assert md in repo_md, f"docs/algorithms.md cites {md}, which is not in the repository"
    assert not re.search(r"\.\./|(?<![\w.:/<])/(?:work|home|tmp|usr)/", DOC), "a path outside the repository"
