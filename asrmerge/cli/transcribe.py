"""``asrmerge transcribe``: Whisper inference over a JSONL manifest, one output record per utterance."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from asrmerge.cli import common

HELP = """Transcribe the utterances of a JSONL manifest with a Whisper model.

Each manifest line is a JSON object with "audio" (a path relative to the manifest's folder), optionally
"id", "text" (the reference) and any other fields; each output line is the same record with "hyp" (the
hypothesis), "hyp_language" (the language decoded) and "model" added, in input order, and "truncated" or
"repetition" (true) for a hypothesis that ran away: stopped at the token limit, or repeats itself. Audio is wav/flac/ogg/mp3 (others through ffmpeg), at any
sample rate; recordings over 30 s are transcribed whole.

MODEL is a Hugging Face folder, a .safetensors file with --config DIR, a CTranslate2 folder,
packaged:NAME, or '-' (a model piped in). A file that cannot be decoded gets an error line on stderr and a
record with "error" and no "hyp"; the run goes on and exits 1 at the end (--strict: stops at once).

Examples:

\b
  asrmerge transcribe merged/ dev.jsonl --language pt > hyp.jsonl
  asrmerge transcribe merged/ dev.jsonl --shard 3/8 -o hyp.3.jsonl --resume   # one Slurm array task
  asrmerge transcribe merged.safetensors --config whisper-base/ dev.jsonl | asrmerge wer
"""


class Task(str, Enum):
    TRANSCRIBE = "transcribe"
    TRANSLATE = "translate"


def transcribe(
    model: Annotated[str, typer.Argument(metavar="MODEL", show_default=False, help="The Whisper model.")],
    manifest: Annotated[str, typer.Argument(metavar="MANIFEST", help="JSONL manifest; '-' reads stdin.")] = "-",
    output: Annotated[str, typer.Option("-o", "--output", metavar="PATH",
                      help="'-' (stdout, the default) or a JSONL file, written as results come.")] = "-",
    config: Annotated[Path | None, typer.Option("--config", metavar="DIR",
                      help="Folder whose config, generation config and tokenizer to use (the base model's).")] = None,
    language: Annotated[str | None, typer.Option("--language", metavar="LANG",
                        help="Spoken language (en, pt, ...); default: detected per utterance.")] = None,
    language_field: Annotated[str | None, typer.Option("--language-field", metavar="FIELD",
                              help="Record field with each utterance's language (overrides --language).")] = None,
    task: Annotated[Task | None, typer.Option("--task", help="Transcribe (default) or translate to English.")] = None,
    beam_size: Annotated[int, typer.Option("--beam-size", metavar="N", help="Beam search width; 1 is greedy.")] = 1,
    batch_size: Annotated[int, typer.Option("--batch-size", metavar="N", help="Utterances per batch.")] = 16,
    device: common.DeviceOpt = "auto",
    dtype: Annotated[common.Dtype | None, typer.Option("--dtype",
                     help="Compute dtype (default: fp16 on CUDA, fp32 on CPU).")] = None,
    max_new_tokens: Annotated[int | None, typer.Option("--max-new-tokens", metavar="N",
                              help="Tokens generated at most per utterance (per window); default: 12 per "
                                   "second of audio + 16.")] = None,
    chunk_length: Annotated[int, typer.Option("--chunk-length", metavar="SECONDS",
                            help="Encoder window, 1-30 s: shorter runs short utterances faster; "
                                 "Whisper's own is 30.")] = 30,
    where: Annotated[list[str] | None, typer.Option("--where", metavar="FIELD=VALUE",
                     help="Only records whose FIELD is VALUE (or one of VALUE,VALUE,...); repeat: all must hold.")] = None,
    shard: Annotated[str | None, typer.Option("--shard", metavar="K/N",
                     help="Only shard K of N (K from 1), or 'auto' from Slurm array / torch.distributed variables.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="With -o FILE: keep its records, append the missing ones.")] = False,
    strict: Annotated[bool, typer.Option("--strict", help="Stop at the first audio file that cannot be read.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace an -o FILE that is not an earlier transcribe "
                                                        "output.")] = False,
    quiet: common.Quiet = False,
    debug: common.Debug = False,
) -> None:
    def job() -> tuple[int, int]:
        from asrmerge.asr import decoding as tr
        from asrmerge.asr import jobs, runaway
        from asrmerge.asr import model as md
        from asrmerge.device import resolve
        from asrmerge.io.jsonl import write_record

        run = jobs.prepare(model, manifest, output, config=str(config) if config else None, shard=shard,
                           resume=resume, force=force, chunk_length=chunk_length, where=where)
        common.sweep(output, quiet)
        jobs.select(run)
        if where:
            common.note(f"--where: {len(run.items)} of {common.plural(run.read, 'utterance')}", quiet)
        part, selected, todo = run.shard, run.selected, run.todo
        if shard == "auto" and part.source == "none" and not quiet:
            common.warn("transcribe", "--shard auto: no Slurm array (SLURM_ARRAY_TASK_ID) or torch.distributed "
                        "(RANK, WORLD_SIZE) variables are set; transcribing the whole manifest as shard 1/1")
        elif part.count > 1 or shard is not None:
            common.note(f"shard {part} ({part.source}): {len(selected)} of {common.plural(len(run.items), 'utterance')}",
                        quiet)
        if resume:
            common.note(f"--resume: {len(selected) - len(todo)} of {len(selected)} already in {output}", quiet)
            extra = run.extra
            if extra and not quiet:
                scope = f"shard {part} of {manifest}" if part.count > 1 else manifest
                common.warn("transcribe", f"{output}: {len(extra)} record{'s' if len(extra) > 1 else ''} not in "
                            f"{scope} (first: id {extra[0]!r}); kept as they are")
        if not todo:
            with jobs.output(run):
                pass  # an empty shard still leaves its (empty) output file
            common.note("nothing to transcribe", quiet)
            return 0, 0
        dev = resolve(device)
        settings = tr.Settings(language=language, language_field=language_field,
                               task=task.value if task else None, beam_size=beam_size,
                               batch_size=batch_size, max_new_tokens=max_new_tokens)
        w = md.load(model, config_dir=config, device=dev, dtype=md.resolve_dtype(dtype.value if dtype else None, dev),
                    chunk_length=chunk_length, verbose=common.debug_on(debug))
        tr.check_settings(w, settings)
        stats = tr.Stats()
        with jobs.output(run) as out, common.progress(quiet) as p:
            for res in tr.transcribe(w, todo, settings, progress=p, stats=stats, verbose=common.debug_on(debug)):
                if res.error is not None:
                    if strict:
                        raise res.error
                    common.console().print(f"asrmerge transcribe: error: {res.error}", markup=False, style="red",
                                           soft_wrap=True)
                write_record(res.record, out)
        if stats.ran_away and not quiet:
            marks = [f"{stats.truncated} stopped at the token limit before the end, \"truncated\": true"] * bool(
                stats.truncated)
            marks += [f"{stats.repetition} {'repeats itself' if stats.repetition == 1 else 'repeat themselves'}, "
                      "\"repetition\": true"] * bool(stats.repetition)
            limit = (f"--max-new-tokens {max_new_tokens}" if max_new_tokens else
                     f"{runaway.TOKENS_PER_SECOND} tokens per second of audio + {runaway.TOKEN_MARGIN}; "
                     "--max-new-tokens N lifts it")
            common.warn("transcribe", f"{stats.ran_away} of {common.plural(stats.done, 'hypothesis')} ran away "
                        f"({'; '.join(marks)}): jq -c 'select(.truncated or .repetition)' lists them; the limit "
                        f"is {limit}")
        common.note(f"transcribed {common.plural(stats.done, 'utterance')} ({stats.audio_s:.1f} s of audio) in {stats.elapsed:.1f} s: "
                    f"{stats.rate:.2f} utt/s, RTF {stats.rtf:.3f} on {dev} ({w.dtype})".replace("torch.", ""), quiet)
        return stats.failed, len(todo)

    failed, total = common.call("transcribe", debug, job)
    if failed:
        common.console().print(f"asrmerge transcribe: error: {failed} of {common.plural(total, 'utterance')} failed; their records "
                               "have an \"error\" field and no \"hyp\"", markup=False, style="red", soft_wrap=True)
        raise typer.Exit(1)

