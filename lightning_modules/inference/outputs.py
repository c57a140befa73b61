"""Where ``denoise.py`` reads and writes: the inputs (a file, a folder, a tree, a glob), the output of
each, the record of the model that made them, and what it says about files that failed.

- ``input=<folder>`` takes the images directly in it; ``recursive=true`` takes its whole tree (PACS
  exports nest a folder per patient, study and series) and mirrors it under ``output``. A folder
  whose images all sit in subfolders says so and names ``recursive=true``; a path that does not exist
  says "does not exist".
- ``output=<name>.png`` (a name with an image extension that is not an existing folder) is the output
  *file* of a single input file; with a folder or a pattern as input it is refused.
- ``.denoised_by.json`` in the output folder (``.<name>.denoised_by.json`` beside a single output file)
  records the model (the SHA-256 of its weights file) and the settings that change its output. A rerun
  with another model or other settings refuses in one line unless ``overwrite=true``, which redoes every
  output; outputs older than such a switch count as not done, so an interrupted ``overwrite=true`` run
  is finished by a plain rerun.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import sys
import time
import warnings
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from datamodules.io.atomic import atomic_write_text
from datamodules.io.images import IMAGE_SUFFIXES, is_image_file
from datamodules.io.pairing import list_images
from lightning_modules.runs.disk import DiskFullError, disk_full_message, is_disk_full

KINDS = "PNG, JPEG, TIFF or DICOM images"
MODEL_RECORD = ".denoised_by.json"  # hidden: output folders hold images only (and failed.txt)
SHOWN_FAILURES = 10  # failed files named on the console; failed.txt has them all
JPEG_SUFFIXES = (".jpg", ".jpeg")


def _image_files_below(folder: Path, skip: Path | None = None) -> dict[Path, list[Path]]:
    """``{subfolder: its images}`` for every non-hidden folder under ``folder`` (itself included) that
    holds images, in name order, leaving out ``skip`` (the output folder when it lies inside)."""
    found: dict[Path, list[Path]] = {}
    for current, dirs, _ in os.walk(folder):
        here = Path(current)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and (skip is None or (here / d).resolve() != skip))
        images = list_images(here)
        if images:
            found[here] = images
    return found


def find_inputs(spec: str, recursive: bool = False, output: Path | None = None) -> tuple[list[Path], Path | None]:
    """``(images, root)`` named by a file, a folder (its images; its whole tree with ``recursive``) or a
    glob pattern. ``root`` is the folder whose tree the outputs mirror (``None``: a flat output)."""
    path = Path(spec).expanduser()
    if path.is_file():
        return [path], None
    if path.is_dir():
        skip = output.expanduser().resolve() if output is not None else None
        if recursive:
            tree = _image_files_below(path, skip)
            files = [p for images in tree.values() for p in images]
            if not files:
                raise FileNotFoundError(f"input={spec}: no {KINDS} found in this folder or any folder below it")
            return files, path
        files = list_images(path)
        if files:
            return files, None
        with warnings.catch_warnings():  # only probing for the error message: no notes on other files
            warnings.simplefilter("ignore")
            below = _image_files_below(path, skip)
        tree = {folder: images for folder, images in below.items() if folder != path}
        if tree:
            count = sum(len(images) for images in tree.values())
            example = next(iter(tree.values()))[0]
            raise FileNotFoundError(
                f"input={spec}: no {KINDS} directly in this folder, but {len(tree)} of its subfolders hold "
                f"{count} (e.g. {example}); pass recursive=true to denoise them into the same tree under output"
            )
        raise FileNotFoundError(f"input={spec}: no {KINDS} found")
    if not glob.has_magic(str(path)):
        existing = next((p for p in path.parents if p.is_dir()), None)
        nearest = f" ({existing} exists)" if existing is not None and str(existing) != "." else ""
        raise FileNotFoundError(f"input={spec}: does not exist{nearest}")
    files = sorted(Path(p) for p in glob.glob(str(path)) if is_image_file(p))
    if not files:
        raise FileNotFoundError(f"input={spec}: no {KINDS} match this pattern")
    return files, None


def looks_like_a_file(output: Path) -> bool:
    """An output named like an image file (``denoised.png``) that is not an existing folder."""
    return output.suffix.lower() in IMAGE_SUFFIXES and not output.is_dir()


def check_output_file(output: Path, inputs: list[Path], spec: str, jpeg_as_png: bool) -> None:
    """Refuse an output file name where it cannot be honoured: several inputs possible, another format."""
    if len(inputs) != 1 or not Path(spec).expanduser().is_file():
        raise ValueError(
            f"output={output}: looks like an image file name, but input={spec} is a folder or a pattern that "
            f"can give several images; name an output folder instead (e.g. output={output.with_suffix('')})"
        )
    source = inputs[0]
    allowed = {source.suffix.lower()} | ({".png"} if jpeg_as_png and source.suffix.lower() in JPEG_SUFFIXES else set())
    if output.suffix.lower() not in allowed:
        name = output.with_suffix(sorted(allowed)[-1]).name
        raise ValueError(
            f"output={output}: another format than input={spec}; denoising writes the input's format, "
            f"name it {name} or give an output folder"
        )


def output_path(source: Path, output_dir: Path, jpeg_as_png: bool) -> Path:
    """Same file name in ``output_dir``; lossy JPEG becomes PNG unless ``jpeg_as_png`` is false."""
    if jpeg_as_png and source.suffix.lower() in JPEG_SUFFIXES:
        return output_dir / (source.stem + ".png")
    return output_dir / source.name


def plan_outputs(
    inputs: list[Path], output_dir: Path, jpeg_as_png: bool, root: Path | None = None
) -> list[tuple[Path, Path]]:
    """``(input, output)`` for every input; never an output that is an input, never two inputs on one output.

    With ``root`` (``recursive=true``) each output lies at its input's place relative to ``root``
    under ``output_dir``. Inputs whose outputs would collide (``scan.jpg`` and ``scan.png`` both giving
    ``scan.png``) keep their extension in the name instead: ``scan_jpg.png`` and ``scan_png.png``. An
    output folder that holds any input file is refused (raising ``ValueError``): denoising must never
    write over the originals, whatever ``overwrite`` says.
    """
    resolved_inputs = {p.resolve() for p in inputs}
    input_folders = {p.parent for p in resolved_inputs}
    folders = {p: output_dir / p.parent.relative_to(root) if root is not None else output_dir for p in inputs}
    clashing = [p for p in inputs if folders[p].resolve() in input_folders]
    if clashing:
        holder = folders[clashing[0]]
        shown = output_dir if holder == output_dir else f"{output_dir} (its subfolder {holder})"
        raise ValueError(
            f"output={shown}: this folder holds the input images (e.g. {clashing[0].name}); "
            "denoising never writes over its inputs, choose another output folder"
        )
    first = {p: output_path(p, folders[p], jpeg_as_png) for p in inputs}
    counts = Counter(first.values())
    jobs = []
    for source, target in first.items():
        if counts[target] > 1:
            extension = source.suffix.lstrip(".").lower() or "noext"
            target = target.with_name(f"{source.stem}_{extension}{target.suffix}")
        if target.resolve() in resolved_inputs:
            raise ValueError(f"output={output_dir}: {target} is an input image; choose another output folder")
        jobs.append((source, target))
    shared = [target for target, count in Counter(t for _, t in jobs).items() if count > 1]
    if shared:
        duplicates = sorted(t.name for t in shared)
        raise ValueError(f"output={output_dir}: several inputs would be written to {', '.join(duplicates)}")
    return jobs


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_record(checkpoint: Path, settings: dict[str, Any]) -> dict[str, Any]:
    """What made the outputs: the weights file (path and SHA-256) and the settings that change them."""
    return {"checkpoint": str(checkpoint.resolve()), "sha256": file_sha256(checkpoint), "settings": settings}


def describe(record: dict[str, Any]) -> str:
    settings = ", ".join(f"{k}={v}" for k, v in sorted(record.get("settings", {}).items()))
    return f"{record.get('checkpoint')} (sha256 {str(record.get('sha256'))[:12]}, {settings})"


def _same_model(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return a.get("sha256") == b.get("sha256") and a.get("settings") == b.get("settings")


def claim_outputs(record_file: Path, record: dict[str, Any], overwrite: bool, output: Path) -> float:
    """Check ``record`` against the one ``record_file`` holds and write it; return the time since which
    an existing output counts as done (made by this model): 0 for all of them.

    Raises ``ValueError`` when another model or other settings made the outputs and ``overwrite`` is false.
    """
    try:
        old = json.loads(record_file.read_text())
    except FileNotFoundError:
        old = None
    except (OSError, ValueError):
        old = {"checkpoint": f"unknown (unreadable {record_file.name})"}
    if old is not None and _same_model(old, record):
        return float(old.get("since", 0.0))
    if old is not None and not overwrite:
        raise ValueError(
            f"output={output}: holds the outputs of {describe(old)}, not of {describe(record)}; pass "
            "overwrite=true to redo them with this model, or choose another output folder"
        )
    since = 0.0 if old is None else time.time()  # after a switch, older outputs are the old model's
    written = {**record, "since": since, "written": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    write_or_disk_full(record_file, lambda: atomic_write_text(record_file, json.dumps(written, indent=2) + "\n"))
    return since


def is_done(target: Path, since: float) -> bool:
    """An output exists and was written by the recorded model (after ``since``)."""
    try:
        return target.stat().st_mtime >= since
    except FileNotFoundError:
        return False


def write_or_disk_full(path: Path, write: Callable[[], Any], done: str = "") -> Any:
    """``write()``; a full disk becomes one :class:`DiskFullError` naming ``path`` (the atomic writers
    leave no partial file)."""
    try:
        return write()
    except (OSError, RuntimeError) as err:
        if not is_disk_full(err, path):
            raise
        raise DiskFullError(disk_full_message(path, done or "nothing half-written is left")) from err


def report_failures(failed: list[tuple[Path, str]], failed_list: Path) -> None:
    """Name each failed input and why on stderr (the first ten and a count), then point to the list."""
    if not failed:
        return
    for source, reason in failed[:SHOWN_FAILURES]:
        line = reason if reason.startswith(str(source)) else f"{source}: {reason}"
        print(f"failed: {line}", file=sys.stderr)
    more = f" ({len(failed) - SHOWN_FAILURES} more not shown)" if len(failed) > SHOWN_FAILURES else ""
    print(f"{len(failed)} failed{more}: all are listed in {failed_list}", file=sys.stderr, flush=True)
