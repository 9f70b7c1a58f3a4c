"""A run folder (`--out DIR`) holds one run, described by DIR/run.json.

    run.json                 what the run is: command, config, data file (path and sha256),
                             tokenizer, init model, reference (fingerprint, architecture), backend,
                             versions
    reference.safetensors    the frozen reference (a model file, see dpo/checkpoint.py)
    checkpoint-<step>/       the policy, optimizer and trainer state (dpo/checkpoint.py)
    metrics.jsonl, metrics.png

A new run refuses a folder that holds another run unless told to overwrite it
(`prepare_out`); a resumed run reads its data path from run.json and refuses data
whose hash differs (`resume_data`). Everything is checked before any work is done.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import platform
import shutil
import sys
import uuid

from .checkpoint import CHECKPOINT_PREFIX, REFERENCE_FILE, list_checkpoints, remove_leftovers
from .safetensors_io import _fsync_folder

RUN_FILE, METRICS_FILE = "run.json", "metrics.jsonl"
RUN_FORMAT = "minigrad-dpo-run/1"
# what a run writes into its folder (besides checkpoint-<step>/): --overwrite removes these and nothing else
RUN_OUTPUTS = (RUN_FILE, REFERENCE_FILE, METRICS_FILE, "metrics.png", "model")


class RunFolderError(ValueError):
    """A run folder that cannot be used as asked (exit status 2 on the command line)."""


def version() -> str:
    try:
        from importlib.metadata import PackageNotFoundError
        from importlib.metadata import version as package_version
        return package_version("minigrad-dpo")
    except (ImportError, PackageNotFoundError):
        return "unknown (not installed)"


def versions() -> dict:
    """Versions of this package, Python and the libraries that decide the numbers."""
    found = {"minigrad-dpo": version(), "python": platform.python_version()}
    for name in ("numpy", "numba", "torch"):
        module = sys.modules.get(name)
        if module is not None:
            found[name] = getattr(module, "__version__", "unknown")
    return found


def check_writable(out) -> None:
    """Create `out` if needed and write (then delete) a probe file there; one clear error if not possible."""
    try:
        os.makedirs(out, exist_ok=True)
        probe = os.path.join(out, f".write-probe.{uuid.uuid4().hex}.tmp")
        with open(probe, "xb"):
            pass
        os.unlink(probe)
    except OSError as error:
        raise RunFolderError(f"--out {out}: cannot write there ({error.strerror or error})") from None


def run_contents(out) -> list:
    """The names in `out` that belong to a DPO run (run.json, reference, metrics, checkpoints)."""
    if not os.path.isdir(out):
        return []
    names = [name for name in RUN_OUTPUTS if os.path.exists(os.path.join(out, name))]
    names += [os.path.basename(path) for _, path in list_checkpoints(out)]
    names += sorted(n for n in os.listdir(out) if n.startswith(CHECKPOINT_PREFIX) and n not in names)
    return names


def prepare_out(out, *, overwrite=False, resume=False, keep=()) -> list:
    """Make `out` ready for a run, before any work: writable; holding no other run unless
    `overwrite` (its run files are then removed, `keep` paths excepted) or `resume`; the
    temporary files of killed writes removed. Returns notes to print."""
    check_writable(out)
    notes = []
    removed = remove_leftovers(out)
    if removed:
        notes.append(f"{out}: removed {len(removed)} temporary file(s) left by an interrupted write")
    if resume:
        return notes
    existing = run_contents(out)
    if existing and not overwrite:
        shown = ", ".join(existing[:4]) + (", ..." if len(existing) > 4 else "")
        raise RunFolderError(f"--out {out} holds another run ({shown}); pass --overwrite to replace it, "
                             "--resume to continue it, or choose another folder")
    keep = {os.path.realpath(p) for p in keep if p}
    for name in existing:
        path = os.path.join(out, name)
        if any(k == os.path.realpath(path) or k.startswith(os.path.realpath(path) + os.sep) for k in keep):
            raise RunFolderError(f"--overwrite would delete {path}, which this run reads; copy it elsewhere first")
    for name in existing:
        path = os.path.join(out, name)
        if os.path.isdir(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    if existing:
        notes.append(f"{out}: --overwrite removed the previous run ({len(existing)} item(s))")
    return notes


def file_sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def data_record(path) -> dict:
    """{"path", "sha256"} of a data file; path None for the built-in demo pairs."""
    if path is None:
        return {"path": None, "sha256": None}
    return {"path": os.path.abspath(path), "sha256": file_sha256(path)}


def write_run(out, record: dict) -> None:
    """Write DIR/run.json atomically."""
    record = {"format": RUN_FORMAT, "created": datetime.datetime.now(datetime.timezone.utc).isoformat(
        timespec="seconds"), **record}
    path = os.path.join(out, RUN_FILE)
    temporary = os.path.join(out, f".{RUN_FILE}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    with open(temporary, "x") as f:
        json.dump(record, f, indent=1)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)
    _fsync_folder(out)


def read_run(out) -> dict:
    path = os.path.join(out, RUN_FILE)
    if not os.path.isfile(path):
        raise RunFolderError(f"{out}: no {RUN_FILE}, so not a run that can be resumed (start a new run there "
                             "with --overwrite)")
    try:
        with open(path) as f:
            record = json.load(f)
    except (ValueError, UnicodeDecodeError) as error:
        raise RunFolderError(f"{path}: unreadable ({error})") from None
    if not isinstance(record, dict) or record.get("format") != RUN_FORMAT:
        raise RunFolderError(f"{path}: not a minigrad-dpo run description (format {RUN_FORMAT!r} expected)")
    return record


def resume_data(run: dict, data_arg, out) -> str | None:
    """The data file a resumed run must read: `data_arg` if given, else the path in run.json;
    either way its sha256 must be the one recorded. None: the built-in demo pairs."""
    saved = run.get("data") or {}
    path, digest = saved.get("path"), saved.get("sha256")
    if path is None:
        if data_arg is not None:
            raise RunFolderError(f"--data {data_arg}: the run in {out} was trained on the built-in demo pairs; "
                                 "resume it without --data")
        return None
    chosen = data_arg if data_arg is not None else path
    if not os.path.isfile(chosen):
        raise RunFolderError(f"{chosen}: the data file of the run in {out} is missing (give its new place "
                             "with --data)")
    now = file_sha256(chosen)
    if now != digest:
        if data_arg is not None:
            raise RunFolderError(f"--data {data_arg} (sha256 {now[:12]}) is not the data the run in {out} was "
                                 f"trained on: {path} (sha256 {digest[:12]})")
        raise RunFolderError(f"{path}: changed since the run in {out} started (sha256 {now[:12]}, "
                             f"recorded {digest[:12]}); resume with the original data")
    return chosen


def repair_metrics(path) -> str | None:
    """Drop a partly written last line of a metrics log (a run killed while writing it).
    Returns a note naming the file, or None when there was nothing to drop."""
    if not os.path.isfile(path):
        return None
    with open(path, "rb") as f:
        data = f.read()
    if not data or data.endswith(b"\n"):
        return None
    cut = data.rfind(b"\n") + 1
    try:
        json.loads(data[cut:])
    except ValueError:
        pass
    else:  # a whole row whose newline was not written yet: keep it
        with open(path, "ab") as f:
            f.write(b"\n")
        return None
    with open(path, "r+b") as f:
        f.truncate(cut)
    return f"{path}: dropped a partly written last line ({len(data) - cut} bytes; the run was killed while writing it)"
