"""Bad inputs, bad destinations and bad options, each a real ``asrmerge`` process: exit code, one error line
naming the subject, and the destination afterwards (absent, or byte-identical to before).

Ids start with the number of the defect of issue 14 they pin (``1-`` .. ``13-``); ``pickle-``, ``header-``
and ``stdin-`` cases are the faults that were already handled and must stay so.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from asrmerge.io.writer import CheckpointWriter
from tests.conftest import cli
from tests.faults.conftest import World
from tests.faults.files import FAST, HEADERS
from tests.faults.harness import Case, Outcome, run_all, snapshot, verify
from tests.faults.zygote import Zygote

Run = subprocess.CompletedProcess[bytes]


def metadata(path: Path) -> dict[str, str]:
    with safe_open(str(path), "pt") as f:
        return f.metadata() or {}


# -- set-ups -------------------------------------------------------------------------------------------------


def user_folder(w: World, d: Path) -> None:
    """A folder of the user's: a config.json among files and folders asrmerge never wrote."""
    p = d / "p"
    (p / "src").mkdir(parents=True)
    (p / "config.json").write_text("{}\n")
    (p / "keep").write_text("x\n")
    (p / "src" / "a.py").write_text("print(1)\n")


def earlier_file(w: World, d: Path) -> None:
    shutil.copy(w.tv, d / "out.safetensors")


def earlier_folder(w: World, d: Path) -> None:
    shutil.copytree(w.model_out, d / "out")


def our_shards(w: World, d: Path) -> None:
    """An earlier asrmerge output in four shards, and a file of the user's beside them."""
    from asrmerge.io.checkpoint import open_checkpoint

    with open_checkpoint(str(w.base)) as c:
        infos = list(c.infos.values())
        with CheckpointWriter(f"{d}/p/", infos, metadata={"asrmerge.version": "0"}, shard_size=1 << 20) as wr:
            for i in infos:
                wr.write(i.name, c.get(i.name))
    (d / "p" / "notes.txt").write_text("mine\n")


def foreign_shards(w: World, d: Path) -> None:
    p = d / "p"
    p.mkdir()
    save_file({"a": torch.zeros(2)}, p / "model-00001-of-00002.safetensors", metadata={"format": "pt"})
    save_file({"b": torch.zeros(2)}, p / "model-00002-of-00002.safetensors", metadata={"format": "pt"})
    index = {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}
    (p / "model.safetensors.index.json").write_text(json.dumps(index))


def plain(w: World, d: Path) -> None:
    (d / "plain").write_text("x\n")


def chardev(w: World, d: Path) -> None:
    try:
        os.mknod(d / "nd", 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # a character device: /dev/null's numbers
    except PermissionError:
        pytest.skip("mknod needs root (CAP_MKNOD): character devices are tested on a device of the case's own, "
                    "never on /dev/null itself")


def stale_temporaries(w: World, d: Path) -> None:
    """An earlier output, and temporaries: a killed run's (file and folder), another host's, a live one's."""
    import socket

    earlier_file(w, d)
    dead = subprocess.Popen(["true"])
    dead.wait()
    host = socket.gethostname()
    (d / f".out.safetensors.asrmerge-tmp-{host}-{dead.pid}-0123abcd").write_bytes(b"x" * 1000)
    (d / f".out.safetensors.asrmerge-tmp-{host}-{dead.pid}-89abcdef").mkdir()
    (d / f".out.safetensors.asrmerge-tmp-{host}-{dead.pid}-89abcdef" / "model.safetensors").write_bytes(b"x")
    (d / f".out.safetensors.asrmerge-tmp-other{host}-{dead.pid}-0123abcd").write_bytes(b"y")
    (d / f".out.safetensors.asrmerge-tmp-{host}-{os.getpid()}-0123abcd").write_bytes(b"z")


# -- checks --------------------------------------------------------------------------------------------------


def user_files_kept(w: World, d: Path, r: Run) -> None:
    p = d / "p"
    assert (p / "keep").read_text() == "x\n" and (p / "src" / "a.py").read_text() == "print(1)\n"
    assert metadata(p / "model.safetensors")["asrmerge.kind"] == "model"


def replaced_by_new_output(w: World, d: Path, r: Run) -> None:
    assert sorted(os.listdir(d / "out")) == sorted(os.listdir(w.model_out))
    assert metadata(d / "out" / "model.safetensors")["asrmerge.scale"] == "0.25"


def our_stale_shards_removed(w: World, d: Path, r: Run) -> None:
    names = sorted(os.listdir(d / "p"))
    assert names == ["README.md", "config.json", "generation_config.json", "model.safetensors", "notes.txt"], names
    assert (d / "p" / "notes.txt").read_text() == "mine\n"


def link_kept_target_replaced(w: World, d: Path, r: Run) -> None:
    assert os.readlink(d / "lnk") == "out.safetensors"
    assert str(w.ft2) in metadata(d / "out.safetensors")["asrmerge.command"]  # this run's output


def still_chardev(w: World, d: Path, r: Run) -> None:
    assert os.stat(d / "nd").st_rdev == os.makedev(1, 3) and (d / "nd").is_char_device()


def safetensors_on_stdout(w: World, d: Path, r: Run) -> None:
    (d / "got.safetensors").write_bytes(r.stdout)
    assert metadata(d / "got.safetensors")["asrmerge.kind"] == "taskvec"
    (d / "got.safetensors").unlink()


def written(name: str):
    def check(w: World, d: Path, r: Run) -> None:
        assert "asrmerge.version" in metadata(d / name)
    return check


def stale_swept(w: World, d: Path, r: Run) -> None:
    import socket

    lines = r.stderr.decode().strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("removed 2 temporaries left by killed asrmerge runs beside"), lines
    assert lines[1] == "wrote out.safetensors", lines
    host = socket.gethostname()
    left = sorted(n for n in os.listdir(d) if "asrmerge-tmp" in n)
    assert len(left) == 2, left  # another host's, and a live process's
    assert any(n.startswith(f".out.safetensors.asrmerge-tmp-{host}-{os.getpid()}-") for n in left), left
    assert any(n.startswith(f".out.safetensors.asrmerge-tmp-other{host}-") for n in left), left


def resumed_keeping_others(w: World, d: Path, r: Run) -> None:
    lines = (d / "hyp.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["id"] == "zzz" and json.loads(lines[1])["id"] == "clip" and len(lines) == 2


def no_unpickling(w: World, d: Path, r: Run) -> None:
    assert not w.marker.exists(), "a pickle was loaded"


# -- the table -----------------------------------------------------------------------------------------------
# No case names a path outside its own folder: run against a regression (or the code before issue 14), a
# case writing to /dev/null itself would replace the machine's /dev/null with a folder. Devices are made
# with mknod in the case's folder, /dev/stdout is reached through a link there, and the classification of
# /dev/null and /dev/stdout themselves is tested without writing (tests/test_io_writer.py).

def tv_args(*extra: str):
    return lambda w, d: ["--apply", str(w.base), str(w.tv), *extra]


CASES: list[Case] = [
    # 1. an existing folder is replaced only when it is an earlier output (or empty)
    Case("1-user-folder-taskvec", "taskvec", lambda w, d: [str(w.base), str(w.ft), "-o", "p"], 2,
         "p: exists and holds keep, src/ that asrmerge did not write", ("p",), setup=user_folder),
    Case("1-user-folder-merge", "merge", lambda w, d: ["--algo", "ta", "--base", str(w.base), str(w.ft), str(w.ft2),
                                                        "-o", "p/"], 2, "p/: exists and holds keep, src/", ("p",),
         setup=user_folder),
    Case("1-user-folder-convert", "convert", lambda w, d: [str(w.base), "-o", "p/"], 2, "holds keep, src/", ("p",),
         setup=user_folder),
    Case("1-config-only", "taskvec", tv_args("-o", "p"), 2, "holds config.json but no weights from asrmerge", ("p",),
         setup=lambda w, d: ((d / "p").mkdir(), (d / "p" / "config.json").write_text("{}"))),
    Case("1-someone-elses-model", "taskvec", tv_args("-o", "p"), 2, "holds model.safetensors that asrmerge did not write", ("p",),
         setup=lambda w, d: shutil.copytree(w.ft, d / "p")),
    Case("1-force-keeps-user-files", "taskvec", tv_args("-o", "p", "--force"), 0, None, ("p",), after="any",
         setup=user_folder, check=user_files_kept),
    Case("1-earlier-output-replaced", "taskvec", tv_args("--scale", "0.25", "-o", "out"), 0, None, ("out",),
         after="any", setup=earlier_folder, check=replaced_by_new_output),
    Case("1-force-removes-only-our-stale-shards", "taskvec", tv_args("-o", "p", "--force"), 0, None, ("p",),
         after="any", setup=our_shards, check=our_stale_shards_removed),
    Case("1-force-never-removes-their-weights", "taskvec", tv_args("-o", "p", "--force"), 2,
         "weights asrmerge did not write", ("p",), setup=foreign_shards),
    Case("1-empty-folder", "taskvec", tv_args("-o", "p"), 0, None, ("p",), after="any",
         setup=lambda w, d: (d / "p").mkdir(), check=written("p/model.safetensors")),
    # 2. files without a suffix, links and devices are never swapped for a folder
    Case("2-plain-file-without-suffix", "taskvec", lambda w, d: [str(w.base), str(w.ft), "-o", "plain"], 2,
         "plain: exists and is not an earlier asrmerge output", ("plain",), setup=plain),
    Case("2-link-to-their-file", "taskvec", lambda w, d: [str(w.base), str(w.ft), "-o", "lnk"], 2,
         "lnk: exists and is not an earlier asrmerge output", ("lnk", "plain"),
         setup=lambda w, d: (plain(w, d), os.symlink("plain", d / "lnk"))),
    Case("2-link-to-earlier-output", "taskvec", lambda w, d: [str(w.base), str(w.ft2), "-o", "lnk"], 0, None,
         ("lnk",), setup=lambda w, d: (earlier_file(w, d), os.symlink("out.safetensors", d / "lnk")),
         check=link_kept_target_replaced),
    Case("2-character-device", "taskvec", lambda w, d: [str(w.base), str(w.ft), "-o", "nd"], 0, None, ("nd",),
         setup=chardev, check=still_chardev),
    Case("2-link-to-a-character-device", "taskvec", lambda w, d: [str(w.base), str(w.ft), "-o", "null"], 0, None,
         ("nd", "null"), setup=lambda w, d: (chardev(w, d), os.symlink("nd", d / "null")), check=still_chardev),
    Case("2-link-to-dev-stdout", "taskvec", lambda w, d: [str(w.base), str(w.ft), "-o", "out"], 0, None, ("out",),
         setup=lambda w, d: os.symlink("/dev/stdout", d / "out"), check=safetensors_on_stdout),
    Case("2-file-given-as-folder", "taskvec", lambda w, d: [str(w.base), str(w.ft), "-o", "plain/"], 2,
         "plain/: is a file, not a folder", ("plain",), setup=plain),
    Case("2-transcript-to-a-character-device", "transcribe",
         lambda w, d: [str(w.asr), str(w.manifest), *FAST, "-o", "nd"], 0, None, ("nd",), setup=chardev),
    # 3. transcribe -o FILE is atomic (Ctrl-C and a full disk: tests/faults/test_scenarios.py)
    Case("3-strict-failure-keeps-transcript", "transcribe",
         lambda w, d: [str(w.asr), "m.jsonl", *FAST, "--strict", "-o", "hyp.jsonl"], 3,
         "missing.wav: no such audio file", ("hyp.jsonl",),
         setup=lambda w, d: ((d / "hyp.jsonl").write_bytes(w.transcript()),
                             (d / "m.jsonl").write_text(json.dumps({"id": "x", "audio": "missing.wav"}) + "\n"))),
    Case("3-their-file-refused", "transcribe", lambda w, d: [str(w.asr), str(w.manifest), *FAST, "-o", "notes.txt"],
         2, "notes.txt: exists and is not an earlier asrmerge output (line 1 is not JSON)", ("notes.txt",),
         setup=lambda w, d: (d / "notes.txt").write_text("my notes\nmore\n")),
    Case("3-resume-onto-their-jsonl", "transcribe",
         lambda w, d: [str(w.asr), str(w.manifest), *FAST, "-o", "data.jsonl", "--resume"], 3,
         "data.jsonl: is not an output of asrmerge transcribe (line 1 is not a transcribe record)", ("data.jsonl",),
         setup=lambda w, d: (d / "data.jsonl").write_text('{"id": "jfk", "error": "x"}\n{"a": 1}\n')),
    # 4. no silent Inf: every written tensor is checked after the cast
    Case("4-apply-overflows-fp16", "taskvec", tv_args("--scale", "1e9", "--dtype", "fp16", "-o", "out/"), 3,
         "out/: tensor model.decoder.embed_positions.weight overflows fp16", ("out",), after="absent"),
    Case("4-overflow-keeps-earlier-output", "taskvec",
         tv_args("--scale", "1e9", "--dtype", "fp16", "-o", "out"), 3, "overflows fp16", ("out",),
         setup=earlier_folder),
    Case("4-convert-overflows-fp16", "convert", lambda w, d: [str(w.big), "--dtype", "fp16", "-o", "c.safetensors"],
         3, "tensor model.encoder.layer_norm.weight overflows fp16", ("c.safetensors",), after="absent"),
    Case("4-convert-pt-overflows-fp16", "convert",
         lambda w, d: [str(w.big), "--dtype", "fp16", "--config", str(w.base), "-o", "c.pt"], 3,
         "c.pt: tensor model.encoder.layer_norm.weight overflows fp16", ("c.pt",), after="absent"),
    # 5. a model with NaN weights
    Case("5-nan-weights-transcribe", "transcribe", lambda w, d: [str(w.asr_nan), str(w.manifest), *FAST, "-o", "h.jsonl"],
         3, "tensor model.decoder.layers.0.fc1.weight has NaN or Inf values", ("h.jsonl",), after="absent"),
    # 6. numeric options are finite, checked before any work
    *[Case(f"6-{name}", cmd, args, 2, f"{opt}: ", ("out",), after="absent") for name, cmd, opt, args in [
        ("weights-nan", "merge", "--weights", lambda w, d: ["--algo", "ta", "--base", str(w.base), str(w.ft),
                                                              str(w.ft2), "--weights", "nan,1", "-o", "out/"]),
        ("weights-inf", "merge", "--weights", lambda w, d: ["--algo", "ta", "--base", str(w.base), str(w.ft),
                                                              str(w.ft2), "--weights", "1,inf", "-o", "out/"]),
        ("scale-nan", "taskvec", "--scale", tv_args("--scale", "nan", "-o", "out/")),
        ("scale-inf", "taskvec", "--scale", tv_args("--scale", "-inf", "-o", "out/")),
        ("lam-inf", "merge", "--lam", lambda w, d: ["--algo", "ta", "--base", str(w.base), str(w.ft), "--lam",
                                                      "model.*=inf", "-o", "out/"]),
        ("shard-size-nan", "taskvec", "--shard-size", tv_args("--shard-size", "nanGB", "-o", "out/")),
        ("param-nan", "merge", "-p", lambda w, d: ["--algo", "ta", "--base", str(w.base), str(w.ft), "-p", "lam=nan",
                                                     "-o", "out/"]),
        ("threshold-inf", "svd-inspect", "--collapse-threshold",
         lambda w, d: [str(w.tv), "--collapse-threshold", "inf"]),
    ]],
    # 7. malformed safetensors headers and indexes: exit 3 saying what is wrong
    *[Case(f"7-{name}", "taskvec", lambda w, d, name=name: ["--stats", str(w.headers[name])], 3, what)
      for name, (_, what) in HEADERS.items() if not name.startswith(("truncated", "oversized"))],
    Case("7-index-weight-map-list", "taskvec", lambda w, d: [str(w.base), str(w.headers["index-list"])], 3,
         "model.safetensors.index.json has a weight_map that is not an object"),
    Case("7-index-non-string", "merge", lambda w, d: ["--algo", "soup", str(w.headers["index-non-string"]),
                                                       str(w.ft)], 3, "'a' maps to 5, not a file name"),
    # 8. text that is not UTF-8
    Case("8-wer-binary-file", "wer", lambda w, d: ["bin.jsonl"], 3, "bin.jsonl: line 1: not UTF-8 text (byte 0xff",
         setup=lambda w, d: (d / "bin.jsonl").write_bytes(b"\xff\xfe\x00garbage\n")),
    Case("8-manifest-latin-1", "transcribe", lambda w, d: [str(w.asr), "m.jsonl", *FAST, "-o", "h.jsonl"], 3,
         "m.jsonl: line 2: not UTF-8 text (byte 0xe3 at column 12)", ("h.jsonl",), after="absent",
         setup=lambda w, d: (d / "m.jsonl").write_bytes(b'{"audio": "a.wav"}\n{"text": "p\xe3o", "audio": "b.wav"}\n')),
    # 9. the same checkpoint twice
    Case("9-same-fine-tune-twice", "merge", lambda w, d: ["--algo", "ta", "--base", str(w.base), str(w.ft),
                                                           f"{w.ft}/./", "-o", "out.safetensors"], 0,
         warning="is the same checkpoint as", dest=("out.safetensors",), after="any", quiet=False,
         check=written("out.safetensors")),
    Case("9-base-among-fine-tunes", "merge", lambda w, d: ["--algo", "ta", "--base", str(w.base), str(w.base),
                                                            str(w.ft), "-o", "-"], 0,
         warning="is the same checkpoint as the base", quiet=False),
    Case("9-strict-inputs", "merge", lambda w, d: ["--algo", "ta", "--base", str(w.base), str(w.ft), f"{w.ft}/.",
                                                    "--strict-inputs", "-o", "out/"], 3,
         "is the same checkpoint as", ("out",), after="absent"),
    # 10. --memory is --memory
    Case("10-memory-0", "merge", lambda w, d: ["--algo", "ta", "--base", str(w.base), str(w.ft), "--memory", "0",
                                                "-o", "out/"], 2, "--memory: not a size: '0'", ("out",), after="absent"),
    Case("10-memory-abc", "merge", lambda w, d: ["--algo", "ta", "--base", str(w.base), str(w.ft), "--memory", "abc",
                                                  "-o", "out/"], 2, "--memory: not a size: 'abc'", ("out",),
         after="absent"),
    # 11. destinations that are inputs or hold the current folder, refused before any work
    Case("11-dot-inside-a-model-folder", "merge", lambda w, d: ["--algo", "ta", "--base", str(w.base), str(w.ft),
                                                                 "-o", "."], 2, ".: is the current folder", ("out",),
         setup=earlier_folder, cwd="out"),
    Case("11-parent-of-the-current-folder", "taskvec", lambda w, d: [*tv_args()(w, d), "-o", ".."], 2,
         "..: holds the current folder", ("out",), setup=earlier_folder, cwd="out"),
    Case("11-output-is-an-input", "taskvec", lambda w, d: [str(w.base), "ft", "-o", "ft"], 2, "ft: is the input ft",
         ("ft",), setup=lambda w, d: shutil.copytree(w.ft, d / "ft")),
    Case("11-file-of-an-input-folder", "taskvec", lambda w, d: [str(w.base), "ft", "-o", "ft/model.safetensors"], 2,
         "is a file of the input ft", ("ft",), setup=lambda w, d: shutil.copytree(w.ft, d / "ft")),
    # 12. temporaries of killed runs (kill -9 itself: tests/faults/test_scenarios.py)
    Case("12-stale-temporaries-swept", "taskvec", lambda w, d: [str(w.base), str(w.ft), "-o", "out.safetensors"], 0,
         None, quiet=False, setup=stale_temporaries, check=stale_swept),
    # 13. --resume keeps records of other manifests, and says so
    Case("13-resume-warns-of-foreign-records", "transcribe",
         lambda w, d: [str(w.asr), str(w.manifest), *FAST, "-o", "hyp.jsonl", "--resume"], 0,
         warning="hyp.jsonl: 1 record not in", quiet=False, check=resumed_keeping_others,
         setup=lambda w, d: (d / "hyp.jsonl").write_text(
             json.dumps({"id": "zzz", "audio": "z.wav", "hyp": "a", "model": "m"}) + "\n")),
    # pickles to every command that reads checkpoints or JSON lines: refused, never loaded
    *[Case(f"pickle-{fmt}-{cmd}{'-' + tag if tag else ''}", cmd, args, code, msg, check=no_unpickling)
      for fmt, cmd, tag, code, msg, args in [
          ("zip.pt", "convert", "", 3, "zip.pt: not a plain openai-whisper checkpoint",
           lambda w, d: [str(w.pickles["zip.pt"]), "-o", "c/"]),
          ("legacy.pt", "convert", "", 3, "legacy.pt: not a plain openai-whisper checkpoint",
           lambda w, d: [str(w.pickles["legacy.pt"]), "-o", "c/"]),
          ("proto5.bin", "convert", "", 3, "proto5.bin: not a plain openai-whisper checkpoint",
           lambda w, d: [str(w.pickles["proto5.bin"]), "-o", "c/"]),
          ("hf-folder", "convert", "", 3, "hf-folder: holds pytorch_model.bin (pickled weights)",
           lambda w, d: [str(w.pickles["hf-folder"]), "-o", "c/"]),
          ("proto2.safetensors", "convert", "", 3, "proto2.safetensors: is a Python pickle",
           lambda w, d: [str(w.pickles["proto2.safetensors"]), "-o", "c/"]),
          ("proto5.bin", "taskvec", "", 3, "proto5.bin: is a Python pickle",
           lambda w, d: [str(w.base), str(w.pickles["proto5.bin"])]),
          ("zip.pt", "taskvec", "apply", 3, "zip.pt: is a zip archive",
           lambda w, d: ["--apply", str(w.base), str(w.pickles["zip.pt"])]),
          ("proto2.safetensors", "taskvec", "stats", 3, "proto2.safetensors: is a Python pickle",
           lambda w, d: ["--stats", str(w.pickles["proto2.safetensors"])]),
          ("legacy.pt", "merge", "", 3, "legacy.pt: is a Python pickle",
           lambda w, d: ["--algo", "ta", "--base", str(w.base), str(w.pickles["legacy.pt"]), str(w.ft)]),
          ("hf-folder", "merge", "base", 3, "hf-folder: holds pytorch_model.bin",
           lambda w, d: ["--algo", "ta", "--base", str(w.pickles["hf-folder"]), str(w.ft)]),
          ("zip.pt", "svd-inspect", "", 3, "zip.pt: is a zip archive", lambda w, d: [str(w.pickles["zip.pt"])]),
          ("legacy.pt", "transcribe", "", 3, "legacy.pt: is a Python pickle",
           lambda w, d: [str(w.pickles["legacy.pt"]), str(w.manifest), *FAST]),
          ("proto5.bin", "transcribe", "manifest", 3, "proto5.bin: line 1: not UTF-8 text",
           lambda w, d: [str(w.asr), str(w.pickles["proto5.bin"]), *FAST]),
          ("zip.pt", "wer", "", 3, "zip.pt: line 1: not", lambda w, d: [str(w.pickles["zip.pt"])]),
      ]],
    Case("pickle-on-stdin-taskvec", "taskvec", lambda w, d: ["--stats", "-"], 3, "-: is a Python pickle",
         stdin=lambda w, d: w.pickles["proto2.safetensors"].read_bytes(), check=no_unpickling),
    # truncated and oversized safetensors
    *[Case(f"header-{name}", "merge", lambda w, d, name=name: ["--algo", "soup", str(w.ft), str(w.headers[name])], 3,
           what) for name, (_, what) in HEADERS.items() if name.startswith(("truncated", "oversized"))],
    # empty and garbage stdin
    Case("stdin-empty-taskvec", "taskvec", lambda w, d: ["--stats", "-"], 3, "-: stdin is empty"),
    Case("stdin-garbage-merge", "merge", lambda w, d: ["--algo", "ta", "--base", "-", str(w.ft)], 3,
         "-: is not a safetensors file", stdin=lambda w, d: b"hello, world\n" * 10),
    Case("stdin-garbage-convert", "convert", lambda w, d: ["-", "-o", "c/"], 3, "-: is not a safetensors file",
         ("c",), after="absent", stdin=lambda w, d: b"\x01\x02garbage" * 8),
    Case("stdin-empty-svd-inspect", "svd-inspect", lambda w, d: ["-"], 3, "-: stdin is empty"),
    Case("stdin-garbage-transcribe", "transcribe", lambda w, d: [str(w.asr), "-", *FAST, "-o", "h.jsonl"], 3,
         "-: line 1: not valid JSON", ("h.jsonl",), after="absent", stdin=lambda w, d: b"garbage\n"),
    Case("stdin-empty-wer", "wer", lambda w, d: [], 3, "-: no records"),
    Case("stdin-garbage-wer", "wer", lambda w, d: ["-"], 3, "-: line 1: not UTF-8 text",
         stdin=lambda w, d: b"\x80\x81\x82\n"),
]


PARITY = ("2-link-to-dev-stdout", "5-nan-weights-transcribe", "pickle-on-stdin-taskvec")


@pytest.fixture(scope="module")
def runs(request: pytest.FixtureRequest, world: World, zygote: Zygote | None,
         tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Outcome], dict[str, Outcome]]:
    """The outcomes of the selected cases (all, unless -k chose some), and (with a zygote) those of the
    parity sample in fresh interpreters, run alongside."""
    import threading

    # other modules parametrize a "case" too (tuples, strings): only this table's Cases count
    chosen = {item.callspec.params["case"].id for item in request.session.items
              if getattr(item, "callspec", None) is not None
              and isinstance(item.callspec.params.get("case"), Case)}
    parity = any(item.name.startswith("test_warm_children") for item in request.session.items)
    fresh: dict[str, Outcome] = {}
    sample = [c for c in CASES if c.id in PARITY] if parity and zygote is not None else []
    side = threading.Thread(target=lambda: fresh.update(run_all(sample, world, tmp_path_factory.mktemp("fresh"),
                                                                cli, workers=1)))
    side.start()
    todo = [c for c in CASES if c.id in chosen or (c.id in PARITY and parity)]
    table = run_all(todo, world, tmp_path_factory.mktemp("faults"), zygote.run if zygote else cli)
    side.join()
    return table, fresh


@pytest.fixture(scope="module")
def outcomes(runs: tuple[dict[str, Outcome], dict[str, Outcome]]) -> dict[str, Outcome]:
    return runs[0]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_fault(case: Case, outcomes: dict[str, Outcome], world: World) -> None:
    verify(case, outcomes[case.id], world)


def test_warm_children_answer_as_fresh_interpreters(runs: tuple[dict[str, Outcome], dict[str, Outcome]],
                                                    zygote: Zygote | None) -> None:
    """A sample of the table (checkpoint bytes on stdout, a model loaded with transformers, stdin) run again
    through tests.conftest.cli, each in a new interpreter: the same status, stdout and stderr."""
    if zygote is None:
        pytest.skip("ASRMERGE_FAULTS_FRESH=1: every case ran in a fresh interpreter already")
    outcomes, fresh = runs
    for c in [c for c in CASES if c.id in PARITY]:
        warm, cold = outcomes[c.id].run, fresh[c.id].run
        assert warm is not None and cold is not None, (outcomes[c.id].failure, fresh[c.id].failure)
        assert (warm.returncode, warm.stdout, warm.stderr) == (cold.returncode, cold.stdout, cold.stderr), c.id


def test_the_table_covers_every_defect_of_issue_14() -> None:
    assert {c.id.split("-")[0] for c in CASES} >= {str(i) for i in range(1, 14)}


def test_snapshots_see_every_change(tmp_path: Path) -> None:
    """The helper the table relies on: content, type, links and new or missing names all count."""
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_bytes(b"1")
    os.symlink("f", tmp_path / "d" / "l")
    first = snapshot(tmp_path / "d")
    (tmp_path / "d" / "f").write_bytes(b"2")
    assert snapshot(tmp_path / "d") != first
    (tmp_path / "d" / "f").write_bytes(b"1")
    assert snapshot(tmp_path / "d") == first
    os.unlink(tmp_path / "d" / "l")
    os.symlink("g", tmp_path / "d" / "l")
    assert snapshot(tmp_path / "d") != first
    assert snapshot(tmp_path / "nothing") is None
    assert snapshot(Path("/dev/null")) == {".": ("device", 0o020000, os.stat("/dev/null").st_rdev)}
