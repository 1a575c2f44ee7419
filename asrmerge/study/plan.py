"""A study's steps: the asrmerge commands it runs, where each writes, and commands.sh, which replays them.

Every step is one asrmerge command run from the study folder, its paths relative to it: the user's
inputs as relative paths (``../models/base``), the study's own files under it (``tv/``, ``merged/``,
``hyp/``, ``scores/``, ``compare/``). commands.sh names the inputs by shell variables (``$BASE``,
``$FT_news``, ``$TEST``...) whose defaults are those paths, so it replays the study anywhere.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass, field

from asrmerge.study.config import Options
from asrmerge.study.inputs import Data

CER_LANGS = {"zh", "ja", "th", "lo", "my", "km", "yue"}  # scripts written without spaces: CER, not WER


@dataclass
class Step:
    """One asrmerge command of the study.

    Attributes:
        id: unique; its stamp is ``steps/ID.json``.
        args: the command's words after ``asrmerge``, paths relative to the study folder.
        outputs: what it writes (folders end with ``/``).
        inputs: what it reads: the study's files, or the user's inputs (as in ``args``).
        stdout: the file its standard output goes to, or ``None``.
        threads: OMP/MKL threads it runs with (``None``: the default), recorded in commands.sh.
    """

    id: str
    args: list[str]
    outputs: list[str]
    inputs: list[str]
    stdout: str | None = None
    threads: int | None = None

    @property
    def verb(self) -> str:
        return self.args[0]


def fmt(v: float) -> str:
    """A parameter value as merge writes it in output names (``1.0``, ``0.35``)."""
    from asrmerge.merge.registry import format_value

    return format_value(float(v))


@dataclass
class Planner:
    """Builds the steps of a study from its options and manifests.

    Attributes:
        opts: the options.
        data: what the manifests hold.
        root: the study folder (absolute).
        threads: threads per transcription when several run side by side.
        variables: commands.sh's input variables, name -> path as the steps name it.
    """

    opts: Options
    data: Data
    root: str
    threads: int | None = None
    variables: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        o = self.opts
        self.base = self._var("BASE", o.base)
        self.fts = {n: self._var(f"FT_{n}", p) for n, p in o.finetunes.items()}
        self.joint = self._var("JOINT", o.joint) if o.joint else None
        if o.manifest:
            self.dev = self.test = self._var("MANIFEST", o.manifest)
        else:
            assert o.dev and o.test
            self.dev, self.test = self._var("DEV", o.dev), self._var("TEST", o.test)
        self.extras = {n: self._var(f"EXTRA_{n}", p) for n, p in o.extras.items()}

    def rel(self, path: str) -> str:
        return path if path.startswith("packaged:") else os.path.relpath(path, self.root)

    def _var(self, name: str, path: str) -> str:
        rel = self.rel(path)
        if path.startswith("packaged:") or rel in self.variables.values():
            return rel
        var = re.sub(r"\W", "_", name)
        while var in self.variables:
            var += "_"
        self.variables[var] = rel
        return rel

    # --- the steps -----------------------------------------------------------------------------------------

    def taskvecs(self) -> list[Step]:
        return [Step(f"taskvec-{n}", ["taskvec", self.base, ft, "-o", self.tv(n), "-q"], [self.tv(n)], [self.base, ft])
                for n, ft in self.fts.items()]

    def tv(self, name: str) -> str:
        return f"tv/{name}.safetensors"

    def _device(self) -> list[str]:
        return ["--device", self.opts.device] if self.opts.device else []

    def merge(self, algo: str) -> tuple[Step, dict[float | None, str]]:
        """The merge of system ``algo`` (an algorithm, or a variant: an algorithm with fixed parameters) over
        its lambda grid (one command): the step and each lambda's model."""
        grid = self.opts.lams.get(algo, [])
        tvs = [self.tv(n) for n in self.fts]
        fixed = self.opts.variants[algo][1] if algo in self.opts.variants else {}
        args = ["merge", "--algo", self.opts.algo(algo), "--base", self.base, *tvs,
                *(w for k, v in fixed.items() for w in ("-p", f"{k}={v}"))]
        if len(grid) > 1:
            models: dict[float | None, str] = {v: f"merged/{algo}-lam{fmt(v)}/" for v in grid}
            args += ["-p", "lam=" + ",".join(fmt(v) for v in grid), "-o", f"merged/{algo}-lam{{lam}}/"]
        else:
            models = {grid[0] if grid else None: f"merged/{algo}/"}
            args += [*(["-p", f"lam={fmt(grid[0])}"] if grid else []), "-o", f"merged/{algo}/"]
        step = Step(f"merge-{algo}", [*args, *self._device(), "-q"], list(models.values()), [self.base, *tvs])
        return step, models

    def beta_sweep(self, lam: float | None) -> tuple[Step, dict[float, str]]:
        """BoostedTSV-M at its chosen lambda over the beta grid (one command)."""
        betas = self.opts.betas
        tvs = [self.tv(n) for n in self.fts]
        models = {b: f"merged/boosted-tsvm-beta{fmt(b)}/" for b in betas}
        args = ["merge", "--algo", "boosted-tsvm", "--base", self.base, *tvs, "-p", "beta=" + ",".join(map(fmt, betas)),
                *(["-p", f"lam={fmt(lam)}"] if lam is not None else []), "-o", "merged/boosted-tsvm-beta{beta}/"]
        return Step("merge-boosted-tsvm-beta", [*args, *self._device(), "-q"], list(models.values()),
                    [self.base, *tvs]), models

    def transcribe(self, sid: str, model: str, manifest: str, out: str, where: list[str], *,
                   language_field: bool = False) -> Step:
        o = self.opts
        args = ["transcribe", model, manifest, "-o", out, "--resume", "-q"]
        for w in where:
            args += ["--where", w]
        if language_field:
            args += ["--language-field", "language"]
        elif o.language:
            args += ["--language", o.language]
        for k, v in o.transcribe.items():
            args += [k, v]
        return Step(sid, [*args, *self._device()], [out], [model, manifest], threads=self.threads)

    def wer(self, sid: str, hyp: str, out: str, by: str | None, cer: bool = False) -> Step:
        args = ["wer", hyp, "--json", "--normalizer", self.opts.normalizer, *(["--by", by] if by else [])]
        return Step(sid, [*args, *(["--cer"] if cer else []), "-q"], [out], [hyp], stdout=out)

    def compare(self, sid: str, a: str, b: str, out: str) -> Step:
        return Step(sid, ["wer", "--compare", a, b, "--json", "--normalizer", self.opts.normalizer, "-q"], [out], [a, b],
                    stdout=out)

    def dev_runs(self, algo: str, models: dict[float | None, str]) -> tuple[list[Step], list[Step], dict[float, str]]:
        """Dev transcriptions and their scores for each lambda of a sweep (none without one)."""
        if len(models) < 2:
            return [], [], {}
        runs, scores, out = [], [], {}
        for lam, model in models.items():
            assert lam is not None
            tag = f"{algo}-lam{fmt(lam)}"
            hyp, score = f"hyp/dev/{tag}.jsonl", f"scores/dev/{tag}.json"
            runs.append(self.transcribe(f"transcribe-dev-{tag}", model, self.dev, hyp, self.data.dev_where))
            scores.append(self.wer(f"wer-dev-{tag}", hyp, score, "domain"))
            out[lam] = score
        return runs, scores, out

    def references(self) -> list[tuple[str, str]]:
        """The systems besides the merges, as (name, model): zero-shot (unless ``--no-zero-shot``) and joint."""
        return ([("zero-shot", self.base)] if self.opts.zero_shot else []) + \
            ([("joint", self.joint)] if self.joint else [])

    def evaluation(self, system: str, model: str) -> tuple[list[Step], list[Step], dict[str, str]]:
        """A system on the test records and every extra set: transcriptions, scores, and the score files by set."""
        runs, scores, files = [], [], {}
        hyp = f"hyp/test/{system}.jsonl"
        runs.append(self.transcribe(f"transcribe-test-{system}", model, self.test, hyp, self.data.test_where))
        files["test"] = f"scores/test/{system}.json"
        scores.append(self.wer(f"wer-test-{system}", hyp, files["test"], "domain"))
        for name, manifest in self.extras.items():
            hyp = f"hyp/extra-{name}/{system}.jsonl"
            runs.append(self.transcribe(f"transcribe-{name}-{system}", model, manifest, hyp, [], language_field=True))
            langs = self.data.extra_languages[name]
            files[name] = f"scores/extra-{name}/{system}.json"
            scores.append(self.wer(f"wer-{name}-{system}", hyp, files[name], "language" if langs else None))
            if CER_LANGS & set(langs):
                files[f"{name}:cer"] = f"scores/extra-{name}/{system}.cer.json"
                scores.append(self.wer(f"cer-{name}-{system}", hyp, files[f"{name}:cer"], "language", cer=True))
        return runs, scores, files

    def own_domain(self, name: str) -> tuple[Step, Step, str]:
        """Fine-tune NAME on its own domain's test records."""
        hyp, score = f"hyp/own/{name}.jsonl", f"scores/own/{name}.json"
        run = self.transcribe(f"transcribe-own-{name}", self.fts[name], self.test, hyp,
                              [*self.data.test_where, f"domain={name}"])
        return run, self.wer(f"wer-own-{name}", hyp, score, "domain"), score

    def inspect(self, merged: str | None, plot: bool) -> list[Step]:
        """svd-inspect of the task vectors (and a merge), in one pass: the summary, and the picture with ``plot``."""
        tvs = [self.tv(n) for n in self.fts]
        picture = ["--plot", "svd-inspect.png"] if plot else []
        args = ["svd-inspect", "--base", self.base, *tvs, *(["--merged", merged] if merged else []), *self._device(),
                "--summary", "--json", *picture, "-q"]
        return [Step("svd-inspect", args, ["svd-summary.json", *picture[1:]],
                     [self.base, *tvs, *([merged] if merged else [])], stdout="svd-summary.json")]

    # --- commands.sh ---------------------------------------------------------------------------------------

    def word(self, arg: str) -> str:
        for var, path in self.variables.items():
            if arg == path:
                return f'"${var}"'
        return shlex.quote(arg)

    def show(self, step: Step) -> str:
        """The step as a shell command line (inputs as variables, stdout redirected)."""
        env = f"OMP_NUM_THREADS={step.threads} MKL_NUM_THREADS={step.threads} " if step.threads else ""
        line = env + " ".join(["asrmerge", *(self.word(a) for a in step.args)])
        return line + (f" > {shlex.quote(step.stdout)}" if step.stdout else "")

    def script(self, steps: list[Step]) -> str:
        """commands.sh: every step in order, replayable by itself from any folder."""
        folders = sorted({os.path.dirname(o.rstrip("/")) for s in steps for o in s.outputs} - {""})
        lines = ["#!/usr/bin/env bash",
                 "# Every asrmerge command of this study, in order, as asrmerge study ran them (its own files are",
                 "# relative to the study folder). Replay: bash commands.sh (into this folder) or O=NEW bash",
                 "# commands.sh (into NEW). The inputs default to their paths relative to this folder; set them to",
                 "# replay elsewhere: BASE=/models/base O=NEW bash commands.sh",
                 "set -euo pipefail",
                 'HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)']
        for var, path in self.variables.items():
            default = path if os.path.isabs(path) else f'"$HERE"/{shlex.quote(path)}'
            lines.append(f"{var}=${{{var}:-{default}}}")
        lines.append('mkdir -p "${O:-$HERE}" && cd "${O:-$HERE}"')
        if folders:
            lines.append("mkdir -p " + " ".join(shlex.quote(f) for f in folders))
        lines += [self.show(s) for s in steps]
        return "\n".join(lines) + "\n"
