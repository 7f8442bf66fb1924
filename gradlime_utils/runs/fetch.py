"""Download what the paper profile needs: ``python -m gradlime_utils.runs.fetch``.

::

    python -m gradlime_utils.runs.fetch --weights resnet18,vgg16 --datasets oxford_pets,cub_warbler_sparrow
    python -m gradlime_utils.runs.fetch --datasets imagenet_val     # licence-gated: prints what to do by hand
    python -m gradlime_utils.runs.fetch --imagenet-val ILSVRC2012_img_val.tar --imagenet-devkit ILSVRC2012_devkit_t12.tar.gz

Weights go where torchvision looks for them (``$TORCH_HOME/hub/checkpoints``, under torchvision's own file
names); datasets to ``--root`` (default ``$GRADLIME_DATA`` or the companion's cache), in the layouts torchvision
and the chapters read (``oxford-iiit-pet/``, ``CUB_200_2011/``).

Every file is downloaded to ``NAME.part`` with a progress bar; an interrupted download resumes from there (an
HTTP range request) when run again. A finished file is verified against its checksum (torchvision's MD5 of each
archive; the SHA-256 prefix that torchvision puts in every weights file name) before it is renamed into place,
and a mismatch deletes it and says so. An archive is unpacked into a temporary folder and moved into place only
when it unpacked completely, so a failed fetch never leaves a half-unpacked dataset where the chapters look.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import os
import re
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path


from gradlime_utils.data.datasets import CUB_URL, default_data_root
from gradlime_utils.data.models import TORCHVISION_MODELS, _torchvision_spec, torchvision_weights_path
from gradlime_utils.runs.paper import Need, locate
from gradlime_utils.runtime import progress_bar as tqdm

CHUNK = 1 << 20


class FetchError(RuntimeError):
    """A download or unpacking that failed, with what to do about it."""


@dataclass(frozen=True)
class Archive:
    """One archive of a dataset: where it is served, its MD5, and the folder (under the data root) it unpacks to."""

    url: str
    md5: str
    into: str = "."


# torchvision's own sources and checksums (torchvision.datasets.OxfordIIITPet; CUB-200-2011 from Caltech's data
# repository, the archive torchvision-based loaders use).
DATASETS = {
    "oxford_pets": (Archive("https://www.robots.ox.ac.uk/~vgg/data/pets/data/images.tar.gz",
                            "5c4f3ee8e5d25df40f4fd59a7f44e54c", "oxford-iiit-pet"),
                    Archive("https://www.robots.ox.ac.uk/~vgg/data/pets/data/annotations.tar.gz",
                            "95a8c909bbe2e81eed6a22bccdf3f68f", "oxford-iiit-pet")),
    "cub_warbler_sparrow": (Archive(CUB_URL, "97eceeb196236b17998738112f37df78", "."),),
}

IMAGENET_INSTRUCTIONS = """\
ImageNet is licence-gated: nothing can fetch it for you.
  1. Sign in at https://image-net.org, accept the terms, and download ILSVRC2012_img_val.tar (6.3 GB) from the
     ILSVRC 2012 page.
     and the development kit ILSVRC2012_devkit_t12.tar.gz (2.5 MB) beside it.
  2. Sort the 50,000 images into one folder per class with the devkit's labels:
       python -m gradlime_utils.runs.fetch --imagenet-val ILSVRC2012_img_val.tar \\
           --imagenet-devkit ILSVRC2012_devkit_t12.tar.gz
     which writes {target}/n01440764/ILSVRC2012_val_00000293.JPEG, ...
  3. The evaluation chapter then finds them there (or pass -p data_root=FOLDER)."""


def mirrored(url: str, mirror: str | None) -> str:
    """``url`` served from ``mirror`` instead (the same file name under the mirror's address), if one is given."""
    if not mirror:
        return url
    return mirror.rstrip("/") + "/" + url.rsplit("/", 1)[-1]


def _digest(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def download(url: str, dest: Path, md5: str | None = None, sha256_prefix: str | None = None,
             progress: bool = True, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` through ``dest.part`` (resumed when it exists), verify it, rename it into place.

    Raises :class:`FetchError` when the server sends fewer bytes than it announced (``dest.part`` is kept: run
    again to resume) or when the checksum differs (``dest.part`` is deleted; nothing is left at ``dest``).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "gradlime-companion"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # the .part already holds the whole file
            response = None
        else:
            raise FetchError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise FetchError(f"{url}: cannot connect ({getattr(exc, 'reason', exc)}); check the network") from exc
    if response is not None:
        with response:
            resumed = response.status == 206
            if have and not resumed:  # the server ignored the range request: start again
                have = 0
            length = response.headers.get("Content-Length")
            expected = have + int(length) if length is not None else None
            received = have
            with open(part, "ab" if resumed else "wb") as fh, \
                    tqdm(total=expected, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
                         desc=dest.name, disable=not progress) as bar:
                try:
                    for block in iter(lambda: response.read(CHUNK), b""):
                        fh.write(block)
                        received += len(block)
                        bar.update(len(block))
                except (OSError, http.client.HTTPException) as exc:
                    raise FetchError(f"{url}: the connection broke after {received:,} bytes ({exc}); run the "
                                     f"same command again to resume from {part}") from exc
            if expected is not None and received < expected:
                raise FetchError(f"{url}: incomplete download, {received:,} of {expected:,} bytes; run the same "
                                 f"command again to resume from {part}")
    for algorithm, want in (("md5", md5), ("sha256", sha256_prefix)):
        if want:
            got = _digest(part, algorithm)
            if not got.startswith(want.lower()):
                part.unlink()
                raise FetchError(f"{url}: {algorithm} checksum mismatch (expected {want}, got {got[:len(want)]}); "
                                 f"the file was deleted. A proxy, a truncated archive or a changed file on the "
                                 f"server: try again, or download it yourself and check it")
    os.replace(part, dest)
    return dest


def unpack(archives, root: Path) -> list[Path]:
    """Unpack ``archives`` (pairs of an archive path and the folder under ``root`` it unpacks to) into ``root``:
    all of them first into one temporary folder inside ``root``, then each top-level entry is moved into place.
    A failed unpacking removes the temporary folder and leaves ``root`` as it was."""
    from torchvision.datasets.utils import extract_archive  # lazy: heavy import

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".unpacking-", dir=root))
    try:
        for archive, into in archives:
            try:
                extract_archive(str(archive), str(staging / into))
            except Exception as exc:  # noqa: BLE001 - tarfile, zipfile and lzma raise different types
                raise FetchError(f"{archive.name} could not be unpacked ({type(exc).__name__}: {exc}); it is "
                                 f"probably truncated. It was deleted: run the same command again") from exc
        placed = []
        for into in dict.fromkeys(into for _, into in archives):
            target = root / into
            target.mkdir(parents=True, exist_ok=True)
            for entry in sorted((staging / into).iterdir()):
                if entry.name.startswith(".unpacking-"):
                    continue
                destination = target / entry.name
                if not destination.exists():
                    os.replace(entry, destination)
                elif destination.is_dir() and entry.is_dir():
                    _merge(entry, destination)
                # an existing file is kept: a rerun never overwrites what is already there
                placed.append(destination)
        return placed
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _merge(source: Path, destination: Path) -> None:
    for entry in source.iterdir():
        to = destination / entry.name
        if entry.is_dir() and to.is_dir():
            _merge(entry, to)
        elif not to.exists():
            os.replace(entry, to)


def fetch_dataset(name: str, root: Path, archives=None, mirror: str | None = None, progress: bool = True) -> Path:
    """Download and unpack dataset ``name`` under ``root`` (``archives`` defaults to :data:`DATASETS`)."""
    root = Path(root)
    if archives is None:
        if name not in DATASETS:
            raise FetchError(f"dataset {name!r} cannot be fetched; choose from {sorted(DATASETS)}")
        if locate(Need("dataset", name, root=str(root))).present:
            return root
        archives = DATASETS[name]
    downloads = root / ".downloads"
    fetched = [download(mirrored(a.url, mirror), downloads / a.url.rsplit("/", 1)[-1], md5=a.md5, progress=progress)
               for a in archives]  # every archive first: a dataset is unpacked whole or not at all
    try:
        unpack([(path, a.into) for path, a in zip(fetched, archives)], root)
    finally:  # the archives go once unpacked, and a corrupt one too, so that a rerun fetches it anew
        for path in fetched:
            path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            downloads.rmdir()  # only when empty: nothing else in the folder is touched
    return root


def fetch_weights(arch: str, mirror: str | None = None, progress: bool = True) -> Path:
    """Download torchvision's ImageNet weights for ``arch`` into the torch cache, checked against the SHA-256
    prefix in torchvision's file name (as ``torch.hub`` does)."""
    if arch not in TORCHVISION_MODELS:
        raise FetchError(f"unknown weights {arch!r}; choose from {list(TORCHVISION_MODELS)}")
    weights = _torchvision_spec()[arch][1]
    dest = torchvision_weights_path(weights)
    if dest.is_file():
        return dest
    match = re.search(r"-([a-f0-9]{8,})\.", os.path.basename(weights.url))
    return download(mirrored(weights.url, mirror), dest, sha256_prefix=match.group(1) if match else None,
                    progress=progress)


IMAGENET_MD5 = {"val": "29b22e2961454d5413ddabcf34fc5622", "devkit": "fa75699e90414af021442c21a62c3abf"}


def _devkit_labels(devkit: Path, work: Path) -> list[str]:
    """The synset (wnid) of each of the 50,000 validation images in file order, from the devkit: ``meta.mat``
    maps ILSVRC2012_ID to wnid, ``ILSVRC2012_validation_ground_truth.txt`` lists one ID per image."""
    from scipy.io import loadmat  # lazy: only this path reads MATLAB files
    from torchvision.datasets.utils import extract_archive  # lazy: heavy import

    extract_archive(str(devkit), str(work))
    data = next(work.glob("*/data"), None)
    if data is None or not (data / "meta.mat").is_file():
        raise FetchError(f"{devkit} is not the ILSVRC2012 devkit: no data/meta.mat inside")
    synsets = loadmat(data / "meta.mat", squeeze_me=True)["synsets"]
    wnid = {int(s["ILSVRC2012_ID"]): str(s["WNID"]) for s in synsets if int(s["num_children"]) == 0}
    truth = (data / "ILSVRC2012_validation_ground_truth.txt").read_text().split()
    return [wnid[int(i)] for i in truth]


def sort_imagenet_val(val_tar, devkit, target, verify: bool = True) -> Path:
    """Unpack the official flat ``ILSVRC2012_img_val.tar`` into ``target/<wnid>/`` by the devkit's labels.

    ``verify`` checks both archives against torchvision's MD5s of the official files. Everything happens in a
    staging folder beside ``target``, moved into place only when every image found its class: a failure leaves
    nothing half-sorted, and an existing non-empty ``target`` is refused, never overwritten.
    """
    from torchvision.datasets.utils import extract_archive  # lazy: heavy import

    val_tar, devkit, target = (Path(x).expanduser().resolve() for x in (val_tar, devkit, target))
    for name, path in (("val", val_tar), ("devkit", devkit)):
        if not path.is_file():
            raise FetchError(f"--imagenet-{name} {path} does not exist")
        if verify and _digest(path, "md5") != IMAGENET_MD5[name]:
            raise FetchError(f"{path} is not the official ILSVRC2012 {name} archive (MD5 differs from "
                             f"{IMAGENET_MD5[name]}); download it again")
    if target.exists() and any(target.iterdir()):
        raise FetchError(f"{target} exists and is not empty; move it away or pass another --root")
    target.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".imagenet_val-", dir=target.parent))
    try:
        labels = _devkit_labels(devkit, stage / "devkit")
        flat = stage / "flat"
        extract_archive(str(val_tar), str(flat))
        images = sorted(p for p in flat.rglob("*.JPEG"))
        if len(images) != len(labels):
            raise FetchError(f"{val_tar} holds {len(images)} images, the devkit labels {len(labels)}")
        sorted_root = stage / "sorted"
        for path, wnid in zip(images, labels):
            (sorted_root / wnid).mkdir(parents=True, exist_ok=True)
            path.rename(sorted_root / wnid / path.name)
        if target.exists():
            target.rmdir()  # empty, checked above
        sorted_root.rename(target)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return target


def _names(text: str | None) -> list[str]:
    return [n.strip() for n in (text or "").split(",") if n.strip()]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gradlime_utils.runs.fetch", description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", help="comma-separated architectures (resnet18,vgg16,...)")
    parser.add_argument("--datasets", help="comma-separated: oxford_pets, cub_warbler_sparrow, imagenet_val")
    parser.add_argument("--root", type=Path, help="data folder (default: $GRADLIME_DATA or the companion cache)")
    parser.add_argument("--mirror", help="fetch every file by its name from this address instead")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--imagenet-val", type=Path, help="the official ILSVRC2012_img_val.tar, to sort by class")
    parser.add_argument("--imagenet-devkit", type=Path, help="the official ILSVRC2012_devkit_t12.tar.gz")
    args = parser.parse_args(argv)
    weights, datasets = _names(args.weights), _names(args.datasets)
    if (args.imagenet_val is None) != (args.imagenet_devkit is None):
        parser.error("--imagenet-val and --imagenet-devkit go together")
    if not weights and not datasets and args.imagenet_val is None:
        parser.error("nothing to fetch: give --weights, --datasets or --imagenet-val with --imagenet-devkit")
    unknown = [d for d in datasets if d not in (*DATASETS, "imagenet_val")]
    if unknown:
        parser.error(f"unknown dataset(s) {unknown}; choose from {[*DATASETS, 'imagenet_val']}")
    root = (args.root.expanduser().resolve() if args.root else default_data_root())
    problem = (f"--root must be a folder, got {root} (a file)" if root.exists() and not root.is_dir() else
               f"--mirror must be an http(s):// or file:// address, got {args.mirror!r}"
               if args.mirror is not None and not re.fullmatch(r"(https?|file)://\S+", args.mirror) else None)
    if problem:
        print(f"fetch: error: {problem}", file=sys.stderr)
        return 2
    failed = 0
    if args.imagenet_val is not None:
        try:
            where = sort_imagenet_val(args.imagenet_val, args.imagenet_devkit, root / "imagenet_val")
            print(f"dataset imagenet_val: {where}")
        except (FetchError, OSError) as exc:
            failed += 1
            print(f"fetch: error: {exc}", file=sys.stderr)
    for arch in weights:
        try:
            print(f"weights {arch}: {fetch_weights(arch, args.mirror, not args.quiet)}")
        except FetchError as exc:
            failed += 1
            print(f"fetch: error: {exc}", file=sys.stderr)
    for name in datasets:
        if name == "imagenet_val":
            if locate(Need("dataset", name, root=str(root / "imagenet_val") if args.root else None)).present:
                print("dataset imagenet_val: present")
                continue
            print(IMAGENET_INSTRUCTIONS.format(target=root / "imagenet_val"), file=sys.stderr)
            failed += 1
            continue
        try:
            print(f"dataset {name}: {fetch_dataset(name, root, mirror=args.mirror, progress=not args.quiet)}")
        except FetchError as exc:
            failed += 1
            print(f"fetch: error: {exc}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
