"""`python -m gradlime_utils.runs.fetch` against a local HTTP server (127.0.0.1): resume after a broken connection,
checksum mismatch, truncated archive, and a dataset fetched from a mirror that the loaders then read."""
import hashlib
import http.server
import tarfile
import threading
from pathlib import Path

import pytest

import gradlime_utils as gu
from gradlime_utils.runs import fetch
from gradlime_utils.runs import fixtures
from gradlime_utils.runs import paper
class Handler(http.server.BaseHTTPRequestHandler):
    """Serves the files of ``root``; honours Range requests; ``/cut/NAME`` announces the whole file but sends
    half of it and closes the connection."""

    root: Path = Path(".")
    requests: list = []

    def log_message(self, *args):  # quiet
        pass

    def do_GET(self):
        cut = self.path.startswith("/cut/")
        path = self.root / self.path.rsplit("/", 1)[-1]
        type(self).requests.append((self.path, self.headers.get("Range")))
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        start = 0
        if self.headers.get("Range") and not cut:
            start = int(self.headers["Range"].split("=")[1].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        self.wfile.write(data[start:start + (len(data) // 2 if cut else len(data))])
        if cut:
            self.close_connection = True


@pytest.fixture
def server(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    handler = type("H", (Handler,), {"root": served, "requests": []})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", served, handler
    httpd.shutdown()
    httpd.server_close()


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _pets_archives(tmp_path: Path, served: Path) -> tuple[Path, Path]:
    """Oxford-IIIT Pet's two archives, made from the fixture as the real ones are packed (images/, annotations/)."""
    base = fixtures.oxford_pets(tmp_path / "made") / "oxford-iiit-pet"
    out = []
    for part in ("images", "annotations"):
        archive = served / f"{part}.tar.gz"
        with tarfile.open(archive, "w:gz") as tar:
            tar.add(base / part, arcname=part)
        out.append(archive)
    return tuple(out)


def test_a_broken_download_resumes_where_it_stopped(server, tmp_path):
    url, served, handler = server
    (served / "blob.bin").write_bytes(bytes(range(256)) * 4096)  # 1 MiB
    dest = tmp_path / "got" / "blob.bin"
    with pytest.raises(fetch.FetchError, match="run the same command again to resume"):
        fetch.download(f"{url}/cut/blob.bin", dest, progress=False)
    part = dest.with_name("blob.bin.part")
    assert not dest.exists() and part.stat().st_size == 512 * 1024
    fetch.download(f"{url}/blob.bin", dest, md5=_md5(served / "blob.bin"), progress=False)
    assert dest.read_bytes() == (served / "blob.bin").read_bytes() and not part.exists()
    assert handler.requests[-1] == ("/blob.bin", f"bytes={512 * 1024}-")  # resumed, not restarted


def test_a_checksum_mismatch_deletes_the_file_and_unpacks_nothing(server, tmp_path):
    url, served, _ = server
    images, annotations = _pets_archives(tmp_path, served)
    root = tmp_path / "data"
    archives = [fetch.Archive(f"{url}/images.tar.gz", _md5(images), "oxford-iiit-pet"),
                fetch.Archive(f"{url}/annotations.tar.gz", "0" * 32, "oxford-iiit-pet")]
    with pytest.raises(fetch.FetchError, match="md5 checksum mismatch"):
        fetch.fetch_dataset("oxford_pets", root, archives=archives, progress=False)
    assert not (root / "oxford-iiit-pet").exists()  # the good first archive was not unpacked alone
    assert not list((root / ".downloads").glob("*.part"))


def test_a_truncated_archive_leaves_nothing_half_unpacked(server, tmp_path):
    url, served, _ = server
    images, _ = _pets_archives(tmp_path, served)
    cut = served / "cut_images.tar.gz"
    cut.write_bytes(images.read_bytes()[: images.stat().st_size // 2])  # served whole, with its own checksum
    root = tmp_path / "data"
    with pytest.raises(fetch.FetchError, match="could not be unpacked"):
        fetch.fetch_dataset("oxford_pets", root, progress=False,
                            archives=[fetch.Archive(f"{url}/cut_images.tar.gz", _md5(cut), "oxford-iiit-pet")])
    assert list(root.iterdir()) == []  # no oxford-iiit-pet, no staging folder, and the bad archive is gone


def test_a_dataset_fetched_from_a_mirror_is_what_the_loaders_read(server, tmp_path):
    url, served, _ = server
    images, annotations = _pets_archives(tmp_path, served)
    root = tmp_path / "data"
    archives = [fetch.Archive(f"https://example.invalid/pets/{a.name}", _md5(a), "oxford-iiit-pet")
                for a in (images, annotations)]
    fetch.fetch_dataset("oxford_pets", root, archives=archives, mirror=url, progress=False)
    assert paper.locate(paper.Need("dataset", "oxford_pets", root=str(root))).present
    with pytest.warns(RuntimeWarning, match="Abyssinian_100.jpg"):  # the fixture's truncated JPEG is skipped
        ds = gu.load_binary_dataset("oxford_pets", "test", root=root, size=32)
    assert ds.counts() == {"cat": 3, "dog": 4}
    assert not (root / ".downloads").exists()  # the archives are removed once unpacked


def test_the_command_line_reports_failures_and_leaves_nothing_behind(server, tmp_path, monkeypatch, capsys):
    url, served, _ = server
    _pets_archives(tmp_path, served)  # served under the real names, but not the real bytes: checksums differ
    fixtures.torchvision_weights(tmp_path / "made_torch", ["squeezenet1_1"])
    weights = next((tmp_path / "made_torch").rglob("*.pth"))
    (served / weights.name).write_bytes(weights.read_bytes())
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    root = tmp_path / "data"
    code = fetch.main(["--datasets", "oxford_pets", "--weights", "squeezenet1_1", "--root", str(root),
                       "--mirror", url, "--quiet"])
    err = capsys.readouterr().err
    assert code == 1
    assert "sha256 checksum mismatch (expected b8a52dc0" in err and "md5 checksum mismatch" in err
    assert not list((tmp_path / "torch").rglob("*.pth*"))  # no weights file, no .part
    assert not (root / "oxford-iiit-pet").exists()
    assert fetch.main(["--datasets", "imagenet_val", "--root", str(root)]) == 1
    assert "licence-gated" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        fetch.main(["--datasets", "mnist"])


def test_weights_download_checks_the_sha256_prefix(server, tmp_path):
    url, served, _ = server
    (served / "w.pth").write_bytes(b"weights" * 1000)
    prefix = hashlib.sha256((served / "w.pth").read_bytes()).hexdigest()[:8]
    dest = fetch.download(f"{url}/w.pth", tmp_path / "hub" / "w.pth", sha256_prefix=prefix, progress=False)
    assert dest.read_bytes() == (served / "w.pth").read_bytes()
    with pytest.raises(fetch.FetchError, match="HTTP 404"):
        fetch.download(f"{url}/missing.pth", tmp_path / "hub" / "m.pth", progress=False)


def test_imagenet_val_is_sorted_from_the_official_flat_archive_and_devkit(tmp_path):
    """The official ILSVRC2012_img_val.tar is flat; the devkit's meta.mat and ground truth put each image in its
    synset folder. The fixture writes both files in their published form (the tar not in class order)."""
    import numpy as np
    from PIL import Image

    from gradlime_utils.runs import fixtures
    from gradlime_utils.runs.fetch import FetchError, sort_imagenet_val

    val_tar, devkit = fixtures.imagenet_val_archives(tmp_path / "dl", per_class=3)
    out = sort_imagenet_val(val_tar, devkit, tmp_path / "root" / "imagenet_val", verify=False)
    classes = sorted(p.name for p in out.iterdir())
    assert classes == sorted(fixtures.IMAGENET_WNIDS)
    for wnid in classes:
        files = sorted((out / wnid).iterdir())
        assert len(files) == 3
        for f in files:  # the fixture paints the first synset's images reddish, the other's bluish
            pixels = np.asarray(Image.open(f)).astype(float)
            assert (pixels[..., 0].mean() > pixels[..., 2].mean()) == (wnid == fixtures.IMAGENET_WNIDS[0])
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".imagenet_val-")]  # no staging left
    with pytest.raises(FetchError, match="not empty"):  # never over what is there
        sort_imagenet_val(val_tar, devkit, out, verify=False)
    with pytest.raises(FetchError, match="not the official ILSVRC2012 val archive"):
        sort_imagenet_val(val_tar, devkit, tmp_path / "other", verify=True)
    assert not (tmp_path / "other").exists()


def test_the_imagenet_cli_resolves_paths_against_the_callers_folder_and_refuses_half_a_request(tmp_path, monkeypatch,
                                                                                            capsys):
    from gradlime_utils.runs import fetch
    from gradlime_utils.runs import fixtures
    val_tar, devkit = fixtures.imagenet_val_archives(tmp_path, per_class=1)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit):
        fetch.main(["--imagenet-val", val_tar.name])
    assert "go together" in capsys.readouterr().err
    code = fetch.main(["--imagenet-val", val_tar.name, "--imagenet-devkit", devkit.name, "--root", "data"])
    err = capsys.readouterr().err
    assert code == 1 and f"{tmp_path}/ILSVRC2012_img_val.tar is not the official" in err  # MD5 checked
    assert not (tmp_path / "data" / "imagenet_val").exists()
