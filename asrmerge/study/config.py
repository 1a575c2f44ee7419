"""What a study is asked to do: the options of ``asrmerge study``, from flags and a ``--config`` file.

A config file (TOML, or JSON for a ``.json`` name) has the options' long names as keys, with dashes or
underscores (``chunk-length`` or ``chunk_length``), plus ``finetunes`` and ``extra`` as tables of NAME =
path; paths in it are relative to the file's folder. A flag given on the command line wins over the file.
Everything here is checked before anything is read or written (usage errors, exit 2).
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from asrmerge.errors import InputError, UsageError

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
NORMALIZERS = ("whisper-en", "basic", "none")
KEYS = {"base", "finetunes", "joint", "zero-shot", "dev", "test", "manifest", "extra", "algos", "variant", "lam", "beta",
        "language", "chunk-length", "batch-size", "beam-size", "max-new-tokens", "normalizer", "jobs", "device",
        "output"}
PATH_KEYS = {"base", "joint", "dev", "test", "manifest", "output"}


@dataclass
class Options:
    """A study's settings, every path absolute (``packaged:NAME`` bases as given).

    Attributes:
        base: the pre-trained model.
        finetunes: NAME (the domain it was tuned on) -> checkpoint, in the order given.
        joint: the fine-tune on every domain at once (the paper's Full-FT), or ``None``.
        zero_shot: whether the base is evaluated too.
        dev, test: manifests of the dev and test records; or ``manifest``, one with a ``set`` field.
        extras: NAME -> manifest of an extra evaluation set.
        algos: the merged systems, in order: algorithm names, then the variants' names.
        variants: NAME -> (algorithm, fixed parameters as ``-p`` text), e.g. ``iso-c-full`` ->
            (``iso-c``, {``rank_mode``: ``full``}).
        lams: system -> lambda grid (only for those swept or fixed; others run at their default).
        betas: BoostedTSV-M's beta sweep at its chosen lambda.
        transcribe: pass-through options of ``asrmerge transcribe`` (option -> value).
        language: the language of the dev and test records (``None``: detected).
        normalizer: ``wer --normalizer``.
        jobs: transcriptions run side by side.
        device: ``--device`` of merge, svd-inspect and transcribe (``None``: their default).
        output: the study folder.
    """

    base: str
    finetunes: dict[str, str]
    output: str
    joint: str | None = None
    zero_shot: bool = True
    dev: str | None = None
    test: str | None = None
    manifest: str | None = None
    extras: dict[str, str] = field(default_factory=dict)
    algos: list[str] = field(default_factory=list)
    variants: dict[str, tuple[str, dict[str, str]]] = field(default_factory=dict)
    lams: dict[str, list[float]] = field(default_factory=dict)
    betas: list[float] = field(default_factory=list)
    transcribe: dict[str, str] = field(default_factory=dict)
    language: str | None = None
    normalizer: str = "basic"
    jobs: int = 1
    device: str | None = None

    def algo(self, system: str) -> str:
        """The registry algorithm a merged system runs (a variant's, or its own name)."""
        return self.variants[system][0] if system in self.variants else system


def _path(value: str, folder: Path) -> str:
    if value.startswith("packaged:"):
        return value
    return os.path.abspath(folder / os.path.expanduser(value))


def pairs(items: list[str], option: str, what: str) -> dict[str, str]:
    """``NAME=PATH`` arguments as an ordered dict; a malformed item or a NAME given twice is a usage error."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not path:
            raise UsageError(f"{item!r} is not NAME={what}", subject=option,
                             hint="e.g. news=ft-news/ (NAME: the domain, as in the manifests' \"domain\")")
        _check_name(name, option)
        if name in out:
            raise UsageError(f"NAME {name!r} is given twice ({out[name]} and {path})", subject=option,
                             hint="give each NAME once")
        out[name] = path
    return out


def _check_name(name: str, option: str) -> None:
    if not NAME.match(name):
        raise UsageError(f"NAME {name!r} is not a plain name", subject=option,
                         hint="use letters, digits and . _ + - (it names files and table rows)")


def grid(text: str, option: str) -> list[float]:
    """``0.6,1.0,1.4`` as floats (finite, positive, no repeats)."""
    values = []
    for part in text.split(","):
        try:
            v = float(part)
        except ValueError:
            raise UsageError(f"{text!r}: {part!r} is not a number", subject=option,
                             hint="a comma-separated list such as 0.6,1.0,1.4") from None
        if not math.isfinite(v) or v <= 0:
            raise UsageError(f"{text!r}: {part} is not a positive number", subject=option)
        if v in values:
            raise UsageError(f"{text!r}: {part} is given twice", subject=option)
        values.append(v)
    return values


def variants(specs: list[str], algos: list[str]) -> dict[str, tuple[str, dict[str, str]]]:
    """``--variant NAME=ALGO:KEY=VALUE[:KEY=VALUE...]``: an algorithm with fixed parameters, a system of its own."""
    from asrmerge.merge.registry import get

    out: dict[str, tuple[str, dict[str, str]]] = {}
    for spec in specs:
        name, sep, rest = spec.partition("=")
        algo, *params = rest.split(":")
        if not sep or not algo or not params:
            raise UsageError(f"{spec!r} is not NAME=ALGO:KEY=VALUE", subject="--variant",
                             hint="e.g. --variant iso-c-full=iso-c:rank_mode=full")
        _check_name(name, "--variant")
        if name in algos or name in out:
            raise UsageError(f"NAME {name!r} is given twice", subject="--variant",
                             hint="give each variant a name of its own, not an algorithm's")
        a = get(algo)
        fixed: dict[str, str] = {}
        for item in params:
            key, eq, value = item.partition("=")
            if not eq or not key or not value:
                raise UsageError(f"{spec!r}: {item!r} is not KEY=VALUE", subject="--variant",
                                 hint="e.g. --variant iso-c-full=iso-c:rank_mode=full")
            if key == "lam":
                raise UsageError(f"{spec!r}: lambda is chosen on dev", subject="--variant",
                                 hint=f"give its grid with --lam {name}:GRID")
            try:
                a.param(key).parse(value)
            except UsageError as e:  # an unknown parameter or a bad value: the registry's words, our option
                raise UsageError(f"{spec!r}: {e.message}", subject="--variant", hint=e.hint) from None
            fixed[key] = value
        out[name] = (algo, fixed)
    return out


def lam_grids(specs: list[str], algos: list[str],
              variants: dict[str, tuple[str, dict[str, str]]] | None = None) -> dict[str, list[float]]:
    """``--lam GRID`` (every system with a lambda) and ``--lam NAME:GRID`` (that one; wins) per merged system."""
    from asrmerge.merge.registry import Algorithm, interval_contains
    from asrmerge.merge.registry import get as get_algo

    def get(name: str) -> Algorithm:
        return get_algo(variants[name][0] if variants and name in variants else name)

    common_grid: list[float] | None = None
    own: dict[str, list[float]] = {}
    for spec in specs:
        algo, sep, values = spec.rpartition(":")
        if sep:
            if algo not in algos:
                get(algo)  # an unknown name: the registry's error, with the closest name
                raise UsageError(f"{algo!r} is not among the study's algorithms ({', '.join(algos)})",
                                 subject="--lam", hint="add it to --algos or --variant, or drop this --lam")
            if not get(algo).has_lam:
                raise UsageError(f"{algo} has no lambda (a parameter-space algorithm)", subject="--lam",
                                 hint="give grids only to task-vector and subspace algorithms")
            own[algo] = grid(values, "--lam")
        else:
            common_grid = grid(values, "--lam")
    out = {}
    for algo in algos:
        a = get(algo)
        g = own.get(algo, common_grid if a.has_lam else None)
        if g is None:
            continue
        accepts = a.param("lam").accepts
        for v in g:
            if isinstance(accepts, str) and not interval_contains(accepts, v):
                raise UsageError(f"lambda {v:g} is outside {accepts} for {algo}", subject="--lam",
                                 hint="see asrmerge merge --list")
        out[algo] = g
    return out


def read_config(path: str) -> dict[str, Any]:
    """A config file's keys (dashes for underscores), its paths made absolute against its folder."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise InputError(e.strerror or "cannot be read", subject=path, hint="check the path") from None
    try:
        if p.suffix == ".json":
            doc = json.loads(text)
        else:
            import tomllib

            doc = tomllib.loads(text)
    except (ValueError, json.JSONDecodeError) as e:
        kind = "JSON" if p.suffix == ".json" else "TOML"
        raise InputError(f"not valid {kind} ({e})", subject=path, hint="see man asrmerge-study, CONFIG FILE") from None
    if not isinstance(doc, dict):
        raise InputError("is not a table of options", subject=path, hint="see man asrmerge-study, CONFIG FILE")
    out: dict[str, Any] = {}
    folder = p.resolve().parent
    for key, value in doc.items():
        k = key.replace("_", "-")
        if k not in KEYS:
            import difflib

            near = difflib.get_close_matches(k, sorted(KEYS), n=1)
            raise UsageError(f"unknown key {key!r}", subject=path,
                             hint=f"did you mean {near[0]!r}?" if near else "see man asrmerge-study, CONFIG FILE")
        if k in PATH_KEYS and isinstance(value, str):
            value = _path(value, folder)
        if k in ("finetunes", "extra"):
            if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
                raise UsageError(f"{key} must be a table of NAME = \"path\"", subject=path)
            value = {n: _path(v, folder) for n, v in value.items()}
        out[k] = value
    return out


def _list(value: Any, key: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        return [str(v) for v in value]
    raise UsageError(f"{value!r} is not a string or a list", subject=key)


def build(flags: dict[str, Any], config: dict[str, Any]) -> Options:
    """The study's options: each flag that was given (not ``None``), else the config file's value, else the default.

    Args:
        flags: option -> value from the command line (``finetunes`` and ``extra`` as lists of NAME=PATH).
        config: :func:`read_config`'s result, or ``{}``.
    Raises:
        UsageError: a missing or malformed option.
    """
    from asrmerge.merge.registry import get, names

    def pick(key: str, default: Any = None) -> Any:
        if flags.get(key) not in (None, []):
            return flags[key]
        return config.get(key, default)

    cwd = Path.cwd()
    fts = pairs(flags["finetunes"], "FINETUNE", "CHECKPOINT") if flags.get("finetunes") else None
    if fts is None:
        fts = {}
        for name in (config.get("finetunes") or {}):
            _check_name(name, "finetunes")
        fts = dict(config.get("finetunes") or {})
    else:
        fts = {n: _path(p, cwd) for n, p in fts.items()}
    if not fts:
        raise UsageError("no fine-tunes", subject="FINETUNE", hint="give them as NAME=CHECKPOINT (NAME: their domain)")
    extras = pairs(flags["extra"], "--extra", "FILE") if flags.get("extra") else None
    if extras is None:
        extras = dict(config.get("extra") or {})
        for name in extras:
            _check_name(name, "--extra")
    else:
        extras = {n: _path(p, cwd) for n, p in extras.items()}
    for name in extras:
        if name in ("id", "ood", "all"):
            raise UsageError(f"NAME {name!r} is a column of the table already", subject="--extra",
                             hint="name the set otherwise (english, fleurs, ...)")

    def path_opt(key: str) -> str | None:
        if flags.get(key) is not None:
            return _path(str(flags[key]), cwd)
        return config.get(key)

    base, output = path_opt("base"), path_opt("output")
    if base is None:
        raise UsageError("is required", subject="--base", hint="the pre-trained model the fine-tunes start from")
    if output is None:
        raise UsageError("is required", subject="-o/--output", hint="the study folder (made if missing)")
    dev, test, manifest = path_opt("dev"), path_opt("test"), path_opt("manifest")
    if manifest is not None and (dev is not None or test is not None):
        raise UsageError("--manifest and --dev/--test exclude each other",
                         hint="give one manifest with a \"set\" field, or --dev FILE --test FILE")
    if manifest is None and (dev is None or test is None):
        raise UsageError("needs --dev FILE and --test FILE (or --manifest FILE with a \"set\" field)",
                         subject="--dev" if dev is None else "--test")
    algos_raw = pick("algos")
    if algos_raw is None:
        algos = names()
    else:
        algos = [a.strip() for x in _list(algos_raw, "--algos") for a in x.split(",") if a.strip()]
        for a in algos:
            get(a)
        dup = next((a for a in algos if algos.count(a) > 1), None)
        if dup:
            raise UsageError(f"{dup} is given twice", subject="--algos")
        if not algos:
            raise UsageError("names no algorithm", subject="--algos", hint="e.g. --algos ta,tsvm,boosted-tsvm")
    variant_raw = pick("variant")
    variant_map = variants([] if variant_raw is None else _list(variant_raw, "--variant"), algos)
    algos = algos + list(variant_map)
    lam_raw = pick("lam")
    if isinstance(lam_raw, dict):
        lam_specs = [f"{a}:{g if isinstance(g, str) else ','.join(map(str, g))}" for a, g in lam_raw.items()]
    else:
        lam_specs = [] if lam_raw is None else _list(lam_raw, "--lam")
    beta_raw = pick("beta")
    betas = grid(",".join(_list(beta_raw, "--beta")), "--beta") if beta_raw is not None else []
    if betas and "boosted-tsvm" not in algos:
        raise UsageError("sweeps BoostedTSV-M's beta, but boosted-tsvm is not among --algos", subject="--beta",
                         hint="add boosted-tsvm to --algos")
    normalizer = str(pick("normalizer", "basic"))
    if normalizer not in NORMALIZERS:
        raise UsageError(f"{normalizer!r} is not one of {', '.join(NORMALIZERS)}", subject="--normalizer")
    transcribe: dict[str, str] = {}
    for key in ("chunk-length", "batch-size", "beam-size", "max-new-tokens"):
        value = pick(key)
        if value is not None:
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise UsageError(f"{value!r} is not a positive integer", subject=f"--{key}")
            transcribe[f"--{key}"] = str(value)
    jobs = pick("jobs", 1)
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise UsageError(f"{jobs!r} is not a positive integer", subject="--jobs")
    zero = flags.get("zero-shot")
    return Options(
        base=base, finetunes=fts, output=output, joint=path_opt("joint"),
        zero_shot=bool(config.get("zero-shot", True) if zero is None else zero),
        dev=dev, test=test, manifest=manifest, extras=extras, algos=algos, variants=variant_map,
        lams=lam_grids(lam_specs, algos, variant_map),
        betas=betas, transcribe=transcribe, language=pick("language"), normalizer=normalizer, jobs=jobs,
        device=pick("device"))


def as_config(opts: Options) -> dict[str, Any]:
    """``opts`` as a config file's keys (JSON-ready, paths absolute): :func:`build` of it gives ``opts`` again.

    Raises:
        AssertionError: an option this function does not know yet (so that a new one is not lost).
    """
    known = {"base", "finetunes", "output", "joint", "zero_shot", "dev", "test", "manifest", "extras", "algos",
             "variants", "lams", "betas", "transcribe", "language", "normalizer", "jobs", "device"}
    missing = {f.name for f in fields(Options)} - known
    assert not missing, f"as_config does not write {missing}"
    doc: dict[str, Any] = {"base": opts.base, "finetunes": dict(opts.finetunes), "output": opts.output,
                           "zero-shot": opts.zero_shot, "extra": dict(opts.extras),
                           "algos": [a for a in opts.algos if a not in opts.variants],
                           "variant": [f"{n}={a}:" + ":".join(f"{k}={v}" for k, v in ps.items())
                                       for n, (a, ps) in opts.variants.items()],
                           "lam": {a: ",".join(map(repr, g)) for a, g in opts.lams.items()},
                           "normalizer": opts.normalizer, "jobs": opts.jobs}
    for key, value in (("joint", opts.joint), ("dev", opts.dev), ("test", opts.test), ("manifest", opts.manifest),
                       ("language", opts.language), ("device", opts.device)):
        if value is not None:
            doc[key] = value
    if opts.betas:
        doc["beta"] = ",".join(map(repr, opts.betas))
    doc.update({k.removeprefix("--"): int(v) for k, v in opts.transcribe.items()})
    return doc
