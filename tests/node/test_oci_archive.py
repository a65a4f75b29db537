"""The one-binary OCI image archive the real node's pause and probe images are made of:
digests that containerd verifies on import, the name it tags the image with."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile

import pytest

from tests.cluster.oci_archive import image_archive


def _members(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()  # type: ignore[union-attr]
                if m.isfile()}


def test_archive_is_an_oci_layout_whose_digests_match_and_names_the_image() -> None:
    files = _members(image_archive("kubesweep.local/tool:2.0", b"\x7fELF...", "tool"))
    blobs = {k.rsplit("/", 1)[1]: v for k, v in files.items() if k.startswith("blobs/")}
    for digest, blob in blobs.items():
        assert hashlib.sha256(blob).hexdigest() == digest
    index = json.loads(files["index.json"])
    [entry] = index["manifests"]
    assert entry["annotations"]["io.containerd.image.name"] == "kubesweep.local/tool:2.0"
    manifest = json.loads(blobs[entry["digest"].split(":")[1]])
    config = json.loads(blobs[manifest["config"]["digest"].split(":")[1]])
    assert config["config"]["Entrypoint"] == ["/tool"]
    [layer] = manifest["layers"]
    layer_files = _members(blobs[layer["digest"].split(":")[1]])
    assert layer_files == {"tool": b"\x7fELF..."}
    assert config["rootfs"]["diff_ids"] == [layer["digest"]]


def test_same_binary_gives_the_same_archive() -> None:
    assert image_archive("a/b:1", b"x") == image_archive("a/b:1", b"x")


def test_name_without_tag_is_refused() -> None:
    with pytest.raises(ValueError, match="needs a tag"):
        image_archive("kubesweep.local/pause", b"x")
