"""Write a one-binary OCI image archive (an OCI image layout in a tar), no registry and
no image tool needed; `ctr images import` loads it under the name in its index.

    python3 tests/cluster/oci_archive.py --name kubesweep.local/pause:1.0 \\
        --binary ~/.cache/kubesweep/k8s-v1.34.4/bin/pause --output pause.tar

scripts/build-control-plane.sh uses it for the real node's sandbox (pause) image. Runs
as a plain script (no package imports) so the build script needs only python3.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import tarfile
from pathlib import Path

# The sandbox image the real node's containerd is configured with (tests/cluster/real_node.py)
# and the tests' tool image. A registry name that does not resolve: an accidental pull
# fails instead of reaching out.
PAUSE_IMAGE = "kubesweep.local/pause:1.0"
PROBE_IMAGE = "kubesweep.local/probe:1.0"
NODE_IMAGES = {"pause": PAUSE_IMAGE, "probe": PROBE_IMAGE}


def _add(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.mtime = 0  # reproducible: the same binary gives the same digests
    tar.addfile(info, io.BytesIO(data))


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def image_archive(name: str, binary: bytes, entry: str = "pause") -> bytes:
    """The bytes of an OCI image layout tar holding one layer with `binary` at /`entry`,
    whose entrypoint is that binary, tagged `name` (registry/repository:tag)."""
    if ":" not in name.rsplit("/", 1)[-1]:
        raise ValueError(f"image name {name!r} needs a tag (e.g. {name}:1.0)")
    layer_buf = io.BytesIO()
    with tarfile.open(fileobj=layer_buf, mode="w", format=tarfile.PAX_FORMAT) as layer:
        _add(layer, entry, binary, 0o755)
    layer_bytes = layer_buf.getvalue()
    config = json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": {"Entrypoint": [f"/{entry}"], "User": "65535:65535"},
        "rootfs": {"type": "layers", "diff_ids": [_digest(layer_bytes)]},
    }, sort_keys=True).encode()
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": _digest(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": _digest(layer_bytes), "size": len(layer_bytes)}],
    }, sort_keys=True).encode()
    index = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": _digest(manifest), "size": len(manifest),
            "platform": {"architecture": "amd64", "os": "linux"},
            # containerd names the imported image after this annotation.
            "annotations": {"io.containerd.image.name": name,
                            "org.opencontainers.image.ref.name": name.rsplit(":", 1)[1]},
        }],
    }, sort_keys=True).encode()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _add(tar, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        _add(tar, "index.json", index)
        for blob in (layer_bytes, config, manifest):
            _add(tar, "blobs/sha256/" + hashlib.sha256(blob).hexdigest(), blob)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    """Command line: write the archive, or print a node image's name."""
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--print-name", choices=sorted(NODE_IMAGES),
                   help="print the name of one of the node's images and exit")
    p.add_argument("--name", help="image name with tag")
    p.add_argument("--binary", type=Path, help="the static binary to package")
    p.add_argument("--output", type=Path, help="archive to write")
    args = p.parse_args(argv)
    if args.print_name:
        print(NODE_IMAGES[args.print_name])
        return 0
    if not (args.name and args.binary and args.output):
        p.error("--name, --binary and --output are required")
    try:
        data = image_archive(args.name, args.binary.read_bytes(), args.binary.name)
    except (OSError, ValueError) as e:
        print(f"oci_archive: {e}", file=sys.stderr)
        return 1
    args.output.write_bytes(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
