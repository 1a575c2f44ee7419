"""The model card (README.md) of every folder output: Hugging Face front matter and how the model was made."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from safetensors import safe_open
from typer.testing import CliRunner

from asrmerge import __version__
from asrmerge.cli.main import app
from asrmerge.io.card import hub_id, model_card
from tests.conftest import cli
from tests.factory import make_lora


def invoke(*args: str) -> None:
    r = CliRunner().invoke(app, list(args))
    assert r.exit_code == 0, r.stderr


def card(folder: Path) -> tuple[dict, str, dict[str, str]]:
    """(front matter, body, the weights' metadata) of a folder output."""
    text = (folder / "README.md").read_text()
    assert text.startswith("---\n")
    _, front, body = text.split("---\n", 2)
    with safe_open(folder / "model.safetensors", "pt") as f:
        meta = f.metadata()
    return yaml.safe_load(front), body, meta


def test_a_merged_folder_says_how_it_was_made(tiny_base: Path, tiny_fts: list[Path], tmp_path: Path) -> None:
    lora = make_lora(tiny_base, tmp_path / "lora", seed=1, r=2, target_modules=["q_proj", "v_proj"])
    out = tmp_path / "merged"
    r = cli("merge", "--algo", "boosted-tsvm", "--base", str(tiny_base), str(tiny_fts[0]), str(tiny_fts[1]), str(lora),
            "-p", "beta=0.25", "--weights", "1,1,0.5", "-o", f"{out}/", "-q")  # a real process: its command line
    assert r.returncode == 0, r.stderr.decode()
    front, body, meta = card(out)
    assert front["library_name"] == "transformers" and front["pipeline_tag"] == "automatic-speech-recognition"
    assert {"asrmerge", "merge", "boosted-tsvm"} <= set(front["tags"])
    assert "base_model" not in front  # local folders are no Hub ids
    params = json.loads(meta["asrmerge.params"])
    from asrmerge.merge.registry import get

    assert set(params) == {p.name for p in get("boosted-tsvm").params} >= {"beta", "rank_frac", "lam", "mean_scale"}
    for name, value in params.items():  # every parameter, defaults included
        shown = value if isinstance(value, str) else json.dumps(value)
        assert f"| `{name}` | `{shown}` |" in body, name
    labels = [str(tiny_fts[0]), str(tiny_fts[1]), str(lora)]
    fps = json.loads(meta["asrmerge.input_fingerprints"])
    kinds = ["fine-tuned model", "fine-tuned model", "PEFT LoRA adapter"]
    for i, (label, fp, kind, w) in enumerate(zip(labels, fps, kinds, [1.0, 1.0, 0.5], strict=True)):
        assert f"| {i + 1} | `{label}` | {kind} | `{fp}` | {w} |" in body
    assert len(set(fps)) == 3 and all(fp.startswith("fp1:") for fp in fps)
    assert f"Base model: `{tiny_base}`, fingerprint `{meta['asrmerge.base_fingerprint']}`" in body
    assert "Carvalho et al. 2026" in body and f"asrmerge {__version__}" in body
    assert f"```sh\n{meta['asrmerge.command']}\n```" in body and "asrmerge merge --algo boosted-tsvm" in body
    assert "| policy | `whisper-default` |" in body


def test_task_vector_and_applied_folders_get_cards_files_do_not(tiny_base: Path, tiny_fts: list[Path],
                                                                 tmp_path: Path) -> None:
    invoke("taskvec", str(tiny_base), str(tiny_fts[0]), "-o", f"{tmp_path}/tv/", "-q")
    front, body, meta = card(tmp_path / "tv")
    assert "task-vector" in front["tags"] and "pipeline_tag" not in front
    assert "**task vector**" in body and "## Use" not in body
    assert f"| 1 | `{tiny_fts[0]}` | fine-tuned model | `{json.loads(meta['asrmerge.input_fingerprints'])[0]}` |" in body
    invoke("taskvec", "--apply", "--scale", "0.5", str(tiny_base), f"{tmp_path}/tv/", "-o", f"{tmp_path}/half/", "-q")
    front, body, _ = card(tmp_path / "half")
    assert "task-arithmetic" in front["tags"] and "plus 0.5 times a task vector" in body
    invoke("taskvec", str(tiny_base), str(tiny_fts[0]), "-o", str(tmp_path / "tv.safetensors"), "-q")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["half", "tv", "tv.safetensors"]


def test_hub_ids_become_base_model() -> None:
    assert hub_id("packaged:tiny.en") == "openai/whisper-tiny.en"
    assert hub_id("openai/whisper-small") == "openai/whisper-small"
    assert hub_id("/data/whisper-small") is None and hub_id("merged/") is None and hub_id("a/b/c") is None
    text = model_card({"asrmerge.version": "1", "asrmerge.kind": "model", "asrmerge.algo": "ta",
                       "asrmerge.base": "openai/whisper-small", "asrmerge.inputs": '["org/ft-a", "b/"]',
                       "asrmerge.command": "asrmerge merge ..."}, "m")
    front = yaml.safe_load(text.split("---\n")[1])
    assert front["base_model"] == ["openai/whisper-small", "org/ft-a"]


@pytest.mark.slow
def test_converted_packaged_model_names_its_hub_origin(real_tiny_en: Path) -> None:
    front, body, meta = card(real_tiny_en)
    assert front["base_model"] == ["openai/whisper-tiny.en"] and front["pipeline_tag"] == "automatic-speech-recognition"
    assert f"Source: `packaged:tiny.en`, fingerprint `{meta['asrmerge.fingerprint']}`" in body
