"""Certificates and keys for the test control plane (CA, serving and client certs).

Uses the openssl CLI: `cryptography` is not among kubesweep's dependencies, and
OpenSSL 1.1.1+/3.x is on every machine that runs these tests.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

# The in-cluster service IP of `kubernetes.default` (first IP of --service-cluster-ip-range);
# the API server's serving cert must name it.
SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"
KUBERNETES_SERVICE_IP = "10.0.0.1"

_APISERVER_SANS = (
    "DNS:localhost,IP:127.0.0.1,DNS:kubernetes,DNS:kubernetes.default,"
    "DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,"
    f"IP:{KUBERNETES_SERVICE_IP}"
)


@dataclass(frozen=True)
class Pki:
    """Paths of every PEM file the components are started with."""

    dir: Path

    def path(self, name: str) -> Path:
        """Path of `<name>` inside the PKI directory."""
        return self.dir / name

    @property
    def ca_cert(self) -> Path:
        return self.path("ca.crt")

    @property
    def apiserver_cert(self) -> Path:
        return self.path("apiserver.crt")

    @property
    def apiserver_key(self) -> Path:
        return self.path("apiserver.key")

    @property
    def kubelet_client_cert(self) -> Path:
        return self.path("apiserver-kubelet-client.crt")

    @property
    def kubelet_client_key(self) -> Path:
        return self.path("apiserver-kubelet-client.key")

    @property
    def node_cert(self) -> Path:
        return self.path("node.crt")

    @property
    def node_key(self) -> Path:
        return self.path("node.key")

    @property
    def sa_key(self) -> Path:
        return self.path("sa.key")

    @property
    def sa_pub(self) -> Path:
        return self.path("sa.pub")


def _openssl(*args: str | Path, cwd: Path) -> None:
    proc = subprocess.run(
        ["openssl", *map(str, args)], cwd=cwd, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(map(str, args))} failed:\n{proc.stderr}")


def _ec_key(path: Path) -> None:
    # P-256 keys generate instantly, unlike RSA.
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-out", path, cwd=path.parent)
    path.chmod(0o600)


def _issue(pki: Pki, name: str, subject: str, extensions: str) -> None:
    d = pki.dir
    _ec_key(d / f"{name}.key")
    _openssl("req", "-new", "-key", f"{name}.key", "-subj", subject, "-out", f"{name}.csr",
             cwd=d)
    (d / f"{name}.ext").write_text(extensions)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", "365", "-sha256", "-extfile", f"{name}.ext",
             "-out", f"{name}.crt", cwd=d)
    (d / f"{name}.csr").unlink()
    (d / f"{name}.ext").unlink()


def issue_client(pki: Pki, name: str, user: str, group: str | None = None) -> tuple[Path, Path]:
    """A client certificate `<name>.crt`/`.key` for `user` (CN) in `group` (O), signed by
    the CA; e.g. the real node's kubelet (system:node:<node>, system:nodes)."""
    subject = (f"/O={group}" if group else "") + f"/CN={user}"
    _issue(pki, name, subject, "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n")
    return pki.path(f"{name}.crt"), pki.path(f"{name}.key")


def generate(directory: Path, apiserver_ips: tuple[str, ...] = ()) -> Pki:
    """Create a fresh CA, the API server's serving cert (also valid for `apiserver_ips`),
    its kubelet client cert, the node agent's serving cert and the service-account
    signing key pair in `directory`."""
    if shutil.which("openssl") is None:
        raise RuntimeError("the openssl CLI is needed to create the test cluster's certificates")
    directory.mkdir(parents=True, exist_ok=True)
    pki = Pki(directory)
    _ec_key(directory / "ca.key")
    _openssl("req", "-x509", "-new", "-key", "ca.key", "-subj", "/CN=kubesweep-test-ca",
             "-days", "365", "-sha256", "-out", "ca.crt",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
             cwd=directory)
    server = "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
    _issue(pki, "apiserver", "/CN=kube-apiserver",
           server + f"subjectAltName={_APISERVER_SANS}"
           + "".join(f",IP:{ip}" for ip in apiserver_ips) + "\n")
    # system:masters lets the API server reach every kubelet endpoint (logs).
    _issue(pki, "apiserver-kubelet-client", "/O=system:masters/CN=kube-apiserver-kubelet-client",
           "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n")
    _issue(pki, "node", "/CN=kubesweep-node-agent",
           server + "subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    # The service-account token signer wants RSA.
    _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
             "-out", "sa.key", cwd=directory)
    pki.sa_key.chmod(0o600)
    _openssl("pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=directory)
    return pki
