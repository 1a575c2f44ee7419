"""Fine-tune a Whisper Hugging Face folder on a JSONL manifest (the benchmark's trainer, not an asrmerge tool).

Cheap and deterministic on a CPU. By default the encoder is frozen and run once per utterance over a
short window (``--window`` seconds: the encoder's positions are sliced to window*50), its outputs are
cached, and the decoder is trained on them; ``--encoder-layers N`` trains the encoder's top N layers too (the frozen
layers below them run once, the trained ones in every step). ``--dev`` keeps the weights of the lowest teacher-forced loss on a dev manifest, measured
every ``--eval-every`` steps (early stopping). The saved model is the full base with its trained parts
replaced, at the base's full context (1500 positions) and in fp32, so its task vector against the base is exact.

    python -m tests.bench.study.finetune --base base/ --manifest train.jsonl --steps 30 -o ft/
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import torch

from asrmerge.asr.model import shorten_encoder

SR = 16000


def load_audio(path: Path) -> torch.Tensor:
    import soundfile as sf

    audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    audio = audio.mean(axis=1)
    if sr != SR:
        import torchaudio.functional as F  # noqa: N812  (only when resampling is needed)

        return F.resample(torch.from_numpy(audio), sr, SR)
    return torch.from_numpy(audio)


def read_manifest(path: Path) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    for r in rows:
        r["audio"] = str((path.parent / r["audio"]).resolve()) if not Path(r["audio"]).is_absolute() else r["audio"]
    return rows


def finetune(base: Path, manifest: Path, out: Path, *, steps: int, batch_size: int = 8, lr: float = 1e-4,
             seed: int = 0, language: str | None = None, window: int = 10, train_embed: bool = False,
             encoder_layers: int = 0, dev: Path | None = None, eval_every: int = 5, log=print) -> dict:
    """Train ``base`` on ``manifest`` for ``steps`` steps and save the result to ``out``.

    The decoder is trained (without ``embed_tokens`` unless ``train_embed``), and the encoder's top
    ``encoder_layers`` layers and final layer norm too (all of them: every layer, the convolutions but not
    the fixed positional embeddings). The frozen part of the encoder runs once per utterance and its outputs
    are cached; the trained layers run in every step. With ``dev`` (a manifest) the teacher-forced loss on it is measured before training and every
    ``eval_every`` steps, and the weights of the lowest one are saved: early stopping on dev.
    """
    from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration, WhisperTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # the study prints its own progress
    torch.manual_seed(seed)
    rng = random.Random(seed)
    rows = read_manifest(manifest)
    dev_rows = read_manifest(dev) if dev else []
    tok = WhisperTokenizer.from_pretrained(base)
    tok.set_prefix_tokens(language=language, task="transcribe", predict_timestamps=False)
    fe = WhisperFeatureExtractor.from_pretrained(base, chunk_length=window)
    model = WhisperForConditionalGeneration.from_pretrained(base, dtype=torch.float32)
    enc = model.model.encoder
    full_pos = enc.embed_positions
    shorten_encoder(model, window)  # what `asrmerge transcribe --chunk-length` does
    enc.eval()
    t0 = time.time()

    def features(rs: list[dict]) -> torch.Tensor:
        return fe([load_audio(Path(r["audio"])).numpy() for r in rs], sampling_rate=SR, return_tensors="pt").input_features

    n_layers = len(enc.layers)
    if not 0 <= encoder_layers <= n_layers:
        raise ValueError(f"encoder_layers={encoder_layers}: the encoder has {n_layers} layers")
    whole = encoder_layers == n_layers
    top = list(enc.layers)[n_layers - encoder_layers:]

    def frozen(feats: torch.Tensor) -> torch.Tensor:
        """The frozen part's output: the encoder's (none trained), the input of its first trained layer, or
        the features themselves (the whole encoder trained)."""
        if whole:
            return feats
        seen: list[torch.Tensor] = []
        hook = top[0].register_forward_pre_hook(lambda _m, args: seen.append(args[0])) if top else None
        with torch.no_grad():
            out = [enc(feats[i:i + 16]).last_hidden_state for i in range(0, len(feats), 16)]
        if hook is not None:
            hook.remove()
            return torch.cat(seen)
        return torch.cat(out)

    def trained(x: torch.Tensor) -> torch.Tensor:
        """The encoder's output from the frozen part's."""
        if whole:
            return enc(x).last_hidden_state
        if not top:
            return x
        for layer in top:
            x = layer(x, None)
        return enc.layer_norm(x)

    feats = frozen(features(rows))
    dev_feats = frozen(features(dev_rows)) if dev_rows else None
    if top and not whole:  # the split encoder is the encoder
        with torch.no_grad():
            probe = features(rows[:1])
            assert torch.allclose(trained(frozen(probe)), enc(probe).last_hidden_state, atol=1e-5)
    labels = [tok(r["text"]).input_ids for r in rows]
    dev_labels = [tok(r["text"]).input_ids for r in dev_rows]
    start = model.config.decoder_start_token_id
    dec = model.model.decoder
    top_names = {f"model.encoder.layers.{i}." for i in range(n_layers - encoder_layers, n_layers)}
    params = [p for n, p in model.named_parameters()
              if (n.startswith("model.decoder.") and (train_embed or "embed_tokens" not in n))
              or (encoder_layers and (whole and n.startswith("model.encoder.") and "embed_positions" not in n
                                      or any(n.startswith(t) for t in top_names)
                                      or n.startswith("model.encoder.layer_norm.")))]
    for p in model.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)

    def loss_of(idx: list[int], labs: list[list[int]], states: torch.Tensor) -> torch.Tensor:
        width = max(len(labs[i]) for i in idx)
        lab = torch.full((len(idx), width), -100, dtype=torch.long)
        for j, i in enumerate(idx):
            lab[j, : len(labs[i])] = torch.tensor(labs[i])
        dec_in = torch.where(lab == -100, tok.eos_token_id, lab)[:, :-1]
        target = lab[:, 1:]
        assert bool((lab[:, 0] == start).all())
        logits = model.proj_out(dec(input_ids=dec_in, encoder_hidden_states=states).last_hidden_state)
        return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1),
                                                 ignore_index=-100)

    def dev_loss() -> float:
        assert dev_feats is not None
        model.eval()
        with torch.no_grad():
            total = sum(float(loss_of(list(range(i, min(i + 16, len(dev_rows)))), dev_labels,
                                      trained(dev_feats[i:i + 16]))) * min(16, len(dev_rows) - i)
                        for i in range(0, len(dev_rows), 16))
        model.train()
        return total / len(dev_rows)

    best: tuple[float, int, dict[str, torch.Tensor]] | None = None
    curve: list[tuple[int, float]] = []

    def checkpoint(step: int) -> None:
        nonlocal best
        value = dev_loss()
        curve.append((step, round(value, 4)))
        if best is None or value < best[0]:
            best = (value, step, {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad})
        if log:
            log(f"step {step}/{steps} dev loss {value:.4f}")

    order: list[int] = []
    losses: list[float] = []
    model.train()
    if dev_rows:
        checkpoint(0)
    for step in range(steps):
        if len(order) < batch_size:
            order += rng.sample(range(len(rows)), len(rows))
        idx, order = order[:batch_size], order[batch_size:]
        loss = loss_of(idx, labels, trained(feats[idx]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if log and (step % 10 == 0 or step == steps - 1):
            log(f"step {step + 1}/{steps} loss {float(loss):.4f}")
        if dev_rows and ((step + 1) % eval_every == 0 or step == steps - 1):
            checkpoint(step + 1)
    chosen = steps
    if best is not None:
        chosen = best[1]
        with torch.no_grad():
            for n, p in model.named_parameters():
                if n in best[2]:
                    p.copy_(best[2][n])
    model.eval()
    enc.embed_positions = full_pos  # saved with Whisper's full window
    model.config.max_source_positions = enc.config.max_source_positions = enc.max_source_positions = \
        full_pos.num_embeddings
    model.save_pretrained(out)
    for name in ("generation_config.json", "preprocessor_config.json", "tokenizer.json", "tokenizer_config.json"):
        if (base / name).is_file() and not (out / name).is_file():
            (out / name).write_bytes((base / name).read_bytes())
    what = "decoder" + (" with embeddings" if train_embed else " without embed_tokens")
    what += f", encoder's top {encoder_layers} of {n_layers} layers" if encoder_layers else ""
    return {"steps": steps, "final_loss": losses[-1] if losses else None, "seconds": time.time() - t0,
            "utterances": len(rows), "trained": what,
            "chosen_step": chosen, "dev_loss": best[0] if best is not None else None, "dev_curve": curve}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", type=Path, required=True)
    ap.add_argument("--manifest", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--language", default=None)
    ap.add_argument("--window", type=int, default=10)
    ap.add_argument("--train-embed", action="store_true")
    ap.add_argument("--encoder-layers", type=int, default=0, help="train the encoder's top N layers too")
    ap.add_argument("--dev", type=Path, default=None, help="dev manifest: early stopping on its loss")
    ap.add_argument("--eval-every", type=int, default=5)
    ap.add_argument("-o", "--output", type=Path, required=True)
    a = ap.parse_args()
    info = finetune(a.base, a.manifest, a.output, steps=a.steps, batch_size=a.batch_size, lr=a.lr, seed=a.seed,
                    language=a.language, window=a.window, train_embed=a.train_embed,
                    encoder_layers=a.encoder_layers, dev=a.dev, eval_every=a.eval_every)
    print(json.dumps(info))


if __name__ == "__main__":
    main()
