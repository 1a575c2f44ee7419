"""The model card (``README.md``) of a folder output: how the weights beside it were made.

It follows the Hugging Face model-card convention, as mergekit writes it: YAML front matter (``base_model``
with the Hub ids among the sources, ``library_name``, ``pipeline_tag``, ``tags``), then Markdown. The card
is built from the provenance metadata stored in the weights (:mod:`asrmerge.io.metadata`), so it says the
same: the algorithm and every parameter (defaults included), each input with its kind and fingerprint,
the weights, the policy, the base and its fingerprint, the dtypes, the asrmerge version and the command.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

KINDS = {"model": "fine-tuned model", "taskvec": "task vector", "lora": "PEFT LoRA adapter"}
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def hub_id(spec: str) -> str | None:
    """The Hugging Face Hub id ``spec`` stands for (``org/name`` that is no local path; ``packaged:NAME`` is
    openai's Whisper NAME), or None."""
    if spec.startswith("packaged:"):
        return "openai/whisper-" + spec.removeprefix("packaged:")
    if HUB_ID.fullmatch(spec) and not os.path.exists(spec):
        return spec
    return None


def _load(meta: dict[str, str], key: str) -> Any:
    raw = meta.get(f"asrmerge.{key}")
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _code(text: object) -> str:
    """``text`` as a Markdown code span that is safe inside a table cell."""
    s = str(text).replace("`", "'").replace("|", "\\|").replace("\n", " ")
    return f"`{s}`"


def _front(base_models: list[str], tags: list[str], pipeline: bool) -> str:
    lines = ["---"]
    if base_models:
        lines.append("base_model:")
        lines += [f"- {json.dumps(m)}" for m in base_models]
    lines.append("library_name: transformers")
    if pipeline:
        lines.append("pipeline_tag: automatic-speech-recognition")
    lines.append("tags:")
    lines += [f"- {json.dumps(t)}" for t in tags]
    lines.append("---")
    return "\n".join(lines)


def model_card(meta: dict[str, str], title: str) -> str:
    """The README.md of a folder written with provenance ``meta`` (safetensors ``__metadata__`` strings).

    Args:
        meta: the ``asrmerge.*`` metadata of the output.
        title: the model's name (the folder's).
    """
    version = meta.get("asrmerge.version", "")
    kind = meta.get("asrmerge.kind", "model")
    algo = meta.get("asrmerge.algo")
    base = meta.get("asrmerge.base")
    base_fp = meta.get("asrmerge.base_fingerprint")
    inputs = _load(meta, "inputs") or []
    fps = _load(meta, "input_fingerprints") or []
    kinds = _load(meta, "input_kinds") or []
    weights = _load(meta, "weights")
    source = meta.get("asrmerge.source")
    if algo:
        what, tags = "merge", ["asrmerge", "merge", "whisper", algo]
    elif kind == "taskvec":
        what, tags = "taskvec", ["asrmerge", "task-vector", "whisper"]
    elif "asrmerge.scale" in meta:
        what, tags = "apply", ["asrmerge", "task-arithmetic", "whisper"]
    else:
        what, tags = "convert", ["asrmerge", "whisper"]
    hubs = [h for h in (hub_id(s) for s in [base or "", source or "", *inputs] if s) if h]
    out = [_front(list(dict.fromkeys(hubs)), tags, kind != "taskvec"), "", f"# {title}", ""]
    link = "[asrmerge](https://pypi.org/project/asrmerge/)"
    if what == "merge":
        out.append(f"This Whisper model is a merge of {len(inputs)} inputs made with {link} {version}, "
                   f"using the `{algo}` algorithm" + (f" on the base model {_code(base)}." if base else "."))
    elif what == "taskvec":
        out.append(f"This folder holds a **task vector** (fine-tuned weights minus base weights), not a model, made "
                   f"with {link} {version}. Add it to its base with `asrmerge taskvec --apply BASE THIS/`.")
    elif what == "apply":
        out.append(f"This Whisper model is its base {_code(base)} plus {meta['asrmerge.scale']} times a task vector, "
                   f"made with {link} {version}.")
    else:
        out.append(f"This Whisper model was converted from {_code(source)} to the Hugging Face format with {link} "
                   f"{version}.")
    out.append("")
    if what == "merge":
        out += ["## Merge details", "", "### Algorithm", ""]
        paper = meta.get("asrmerge.paper")
        out.append(f"`{algo}`" + (f": {paper}." if paper else "."))
        out += ["", "| parameter | value |", "|---|---|"]
        params = _load(meta, "params") or {}
        out += [f"| {_code(k)} | {_code(json.dumps(v) if not isinstance(v, str) else v)} |"
                for k, v in sorted(params.items())]
        lam_groups = _load(meta, "lam_groups")
        extra = [("policy", meta.get("asrmerge.policy")), ("lambda groups", json.dumps(lam_groups) if lam_groups else None),
                 ("compute dtype", meta.get("asrmerge.compute_dtype"))]
        out += [f"| {name} | {_code(v)} |" for name, v in extra if v]
        out.append("")
    if inputs:
        out += ["### Inputs" if what == "merge" else "## Inputs", "",
                "| # | input | kind | fingerprint |" + (" weight |" if weights else ""),
                "|---|---|---|---|" + ("---|" if weights else "")]
        for i, label in enumerate(inputs):
            k = KINDS.get(kinds[i], kinds[i]) if i < len(kinds) else ""
            fp = fps[i] if i < len(fps) else ""
            w = f" {weights[i]} |" if weights and i < len(weights) else ""
            out.append(f"| {i + 1} | {_code(label)} | {k} | {_code(fp)} |{w}")
        out.append("")
    facts = []
    if base:
        facts.append(f"- Base model: {_code(base)}" + (f", fingerprint {_code(base_fp)}" if base_fp else ""))
    elif base_fp:
        facts.append(f"- Base model fingerprint: {_code(base_fp)}")
    if source:
        facts.append(f"- Source: {_code(source)}" + (f", fingerprint {_code(meta['asrmerge.fingerprint'])}"
                                                    if "asrmerge.fingerprint" in meta else ""))
    if meta.get("asrmerge.dtype"):
        facts.append(f"- Weights stored in {meta['asrmerge.dtype']}")
    facts.append(f"- asrmerge {version}")
    out += facts + [""]
    if meta.get("asrmerge.command"):
        out += ["### Command" if what == "merge" else "## Command", "", "```sh", meta["asrmerge.command"], "```", ""]
    out += ["Fingerprints (`fp1:`) identify weights: SHA-256 over every tensor's name, shape and four sampled rows, "
            "as `asrmerge` computes them.", ""]
    if kind != "taskvec":
        out += ["## Use", "", "```python", "from transformers import pipeline", "",
                "asr = pipeline(\"automatic-speech-recognition\", model=\"PATH/TO/THIS/FOLDER\")", "```", ""]
    return "\n".join(out)
