"""A real node for the test cluster: containerd + kubelet + kube-proxy (+ a fake GPU
device plugin) in a network namespace of their own.

Host layout (one real node per machine at a time; see tests/cluster/README.md):

    host netns                         node netns "kubesweep-node"
    ----------                         ---------------------------
    kswh0 10.213.0.1/30  <-- veth -->  eth0 10.213.0.2/30  (the node IP)
    (API server binds here)            ksw-br0 10.214.0.1/24 (CNI bridge, pods 10.214.0.x)
    routes 10.214.0.0/24 (pods) and    ksw-void (veth, peer down): the default route's dead end
    10.0.0.0/24 (Services) via .0.2    KUBESWEEP-GUARD chains + kubelet's/kube-proxy's KUBE-*
    KUBESWEEP-FWD guard chain

Nothing in the node netns routes anywhere but to this machine: its default route is a
veth whose peer is down in the same netns (a dead end), and its guard chain REJECTs pod
traffic to anything but other pods, the node and the host address, and any Service IP
(from pods or from the host) kube-proxy has not rewritten. So a missing rule fails fast,
and nothing can leave even then. containerd, kubelet and kube-proxy keep their iptables
rules, bridge and sysctls in the node netns, which `down` deletes as a whole.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import processes
from .oci_archive import PAUSE_IMAGE
from .paths import cache_dir, control_plane_binary
from .pki import SERVICE_CLUSTER_IP_RANGE

NETNS = "kubesweep-node"
HOST_VETH = "kswh0"
NODE_VETH = "eth0"
HOST_IP = "10.213.0.1"
NODE_IP = "10.213.0.2"
LINK_PREFIX = 30
POD_CIDR = "10.214.0.0/24"
POD_GATEWAY = "10.214.0.1"
BRIDGE = "ksw-br0"
VOID = "ksw-void"
VOID_PEER = "ksw-void-peer"
# Host chain (filter table): FORWARD jumps to it first.
HOST_FORWARD_CHAIN = "KUBESWEEP-FWD"
# The node netns' chains (filter table): FORWARD and OUTPUT jump to them first.
GUARD_CHAIN = "KUBESWEEP-GUARD"
GUARD_OUT_CHAIN = "KUBESWEEP-GUARD-OUT"
NODE_GUARD_JUMPS = (("FORWARD", GUARD_CHAIN), ("OUTPUT", GUARD_OUT_CHAIN))
KUBELET_PORT = 10250
KUBELET_HEALTHZ_PORT = 10248
KUBE_PROXY_HEALTHZ_PORT = 10256
# The kubelet's device-plugin directory is compiled in (k8s.io/kubelet's
# DevicePluginPath), whatever --root-dir says: one more reason for one node per machine.
DEVICE_PLUGIN_DIR = Path("/var/lib/kubelet/device-plugins")
# The kubelet links every container's log here (compiled in); the logs themselves are
# in the run dir (podLogsDir).
CONTAINER_LOGS_DIR = Path("/var/log/containers")
# The kubelet sets these host-wide (protectKernelDefaults: false); down restores them.
SYSCTLS = ("vm/overcommit_memory", "kernel/panic", "kernel/panic_on_oops",
           "kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes")
CGROUP_FS = Path("/sys/fs/cgroup")
KUBEPODS = "kubepods"  # the kubelet's pod cgroup (cgroupfs driver, cgroupRoot "/")
# What one real node installed on the host, so a later `up` or `down` can undo it even
# after a crash; also the machine-wide "one real node" marker.
REGISTRY = Path("/run/kubesweep-real-node.json")
LOCK = Path("/run/lock/kubesweep-real-node.lock")


class RealNodeError(RuntimeError):
    """The real node could not be set up (message names the cause and the log)."""


@dataclass
class RealNodeSpec:
    """The real node `up --kubelet` starts."""

    name: str = "kubesweep-real-0"
    gpus: int = 2
    # Image archives imported into the node's containerd at start (default: every
    # *.tar in ~/.cache/kubesweep/images, e.g. pause, probe and scripts/build-images.sh's).
    images_dir: Path | None = None

    def resolved_images_dir(self) -> Path:
        """Where the image archives to import are."""
        return self.images_dir or cache_dir() / "images"


@dataclass
class HostRecord:
    """Everything the real node changed on the host; `teardown` undoes it."""

    run_dir: str
    run_id: str
    owner_pids: list[int] = field(default_factory=list)
    sysctls: dict[str, str] = field(default_factory=dict)
    netns_before: list[str] = field(default_factory=list)
    created_var_lib_kubelet: bool = False
    created_container_logs_dir: bool = False
    steps: list[str] = field(default_factory=list)  # what has been set up, in order

    def save(self) -> None:
        """Write the registry (atomically)."""
        tmp = REGISTRY.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.replace(REGISTRY)

    @classmethod
    def load(cls) -> HostRecord | None:
        """The registry, or None when no real node is set up on this machine."""
        try:
            return cls(**json.loads(REGISTRY.read_text()))
        except FileNotFoundError:
            return None
        except (ValueError, TypeError):
            # Unreadable: treat as a crashed node of unknown shape; teardown of a blank
            # record still removes the fixed-name netns, chains and cgroups.
            return cls(run_dir="", run_id="", steps=["netns", "host-guard", "kubelet"])

    def busy(self) -> bool:
        """True while a process of this record's cluster is alive."""
        return any(processes.alive(p) for p in self.owner_pids if p != os.getpid())


# --- small helpers ----------------------------------------------------------------------

def _run(*argv: str, check: bool = True) -> str:
    proc = subprocess.run(list(argv), capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise RealNodeError(f"`{' '.join(argv)}` failed ({proc.returncode}): "
                            f"{proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def _in_netns(*argv: str) -> list[str]:
    # nsenter switches only the network namespace (unlike `ip netns exec`, which also
    # makes a private mount namespace): containerd and the kubelet must share mounts.
    return ["nsenter", f"--net=/run/netns/{NETNS}", "--", *argv]


def netns_exec(*argv: str, check: bool = True) -> str:
    """Run a command inside the node's network namespace; returns its stdout."""
    return _run(*_in_netns(*argv), check=check)


def _iptables(*args: str, netns: bool = False, check: bool = True) -> str:
    argv = ["iptables", "-w", "5", *args]
    return _run(*(_in_netns(*argv) if netns else argv), check=check)


def _delete_jumps(hook: str, chain: str, netns: bool = False) -> None:
    """Remove every `-j chain` rule from `hook`."""
    for _ in range(20):
        argv = ["iptables", "-w", "5", "-D", hook, "-j", chain]
        argv = _in_netns(*argv) if netns else argv
        if subprocess.run(argv, capture_output=True).returncode != 0:
            return


def _read_sysctl(name: str) -> str | None:
    try:
        return Path("/proc/sys", name).read_text().strip()
    except OSError:
        return None


def _write_sysctl(name: str, value: str) -> None:
    with contextlib.suppress(OSError):
        Path("/proc/sys", name).write_text(value + "\n")


def _netns_entries() -> list[str]:
    try:
        return sorted(os.listdir("/run/netns"))
    except FileNotFoundError:
        return []


def _check_free_ranges() -> None:
    """Refuse to start when the node's ranges would shadow a route this host uses."""
    ours = [ipaddress.ip_network(f"{HOST_IP}/{LINK_PREFIX}", strict=False),
            ipaddress.ip_network(POD_CIDR), ipaddress.ip_network(SERVICE_CLUSTER_IP_RANGE)]
    for line in _run("ip", "-4", "-o", "route", "show", "table", "all").splitlines():
        words = line.split()
        if not words or words[0] in ("default", "local", "broadcast", "unreachable"):
            continue
        if "dev" in words and words[words.index("dev") + 1] == HOST_VETH:
            continue
        try:
            net = ipaddress.ip_network(words[0], strict=False)
        except ValueError:
            continue
        if net.prefixlen == 0 or net.is_loopback:
            continue
        for mine in ours:
            if net.overlaps(mine):
                raise RealNodeError(f"the host already routes {net} ({line.strip()}), which "
                                    f"overlaps the real node's range {mine}; free it first")


@contextlib.contextmanager
def machine_lock(timeout: float = 60.0) -> Iterator[None]:
    """Hold the machine-wide real-node lock: claiming the host, and tearing a node down
    and checking nothing is left, happen under it, so another session cannot set up
    its node in between."""
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    with open(LOCK, "a") as f:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise RealNodeError(f"timed out waiting for {LOCK}") from None
                time.sleep(0.5)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def claim_host(run_dir: Path, run_id: str, wait: float) -> HostRecord:
    """Become the machine's one real node: wait up to `wait` seconds while another live
    cluster has one, clean up after a dead one, then record this run in the registry."""
    if os.geteuid() != 0:
        raise RealNodeError("the real node (--kubelet) needs root: it creates a network "
                            "namespace, iptables rules, mounts and cgroups")
    for tool in ("containerd", "containerd-shim-runc-v2", "runc", "ctr", "iptables", "ip",
                 "nsenter"):
        if shutil.which(tool) is None:
            raise RealNodeError(f"{tool} is missing: run scripts/install-node-deps.sh")
    if not Path("/usr/lib/cni/bridge").exists():
        raise RealNodeError("/usr/lib/cni/bridge is missing: run scripts/install-node-deps.sh")
    deadline = time.monotonic() + wait
    while True:
        with machine_lock():
            previous = HostRecord.load()
            if previous is not None and not previous.busy():
                teardown(previous)
                previous = None
            if previous is None:
                record = HostRecord(str(run_dir), run_id, owner_pids=[os.getpid()],
                                    netns_before=_netns_entries())
                record.save()
                return record
        if time.monotonic() > deadline:
            raise RealNodeError(
                f"another real test node is running on this machine (run dir "
                f"{previous.run_dir}); stop it with `python -m tests.cluster --run-dir "
                f"{previous.run_dir} down`")
        time.sleep(2)


# --- network ----------------------------------------------------------------------------

def setup_network(record: HostRecord) -> None:
    """Create the node netns, the veth to the host, the void default route, the host
    route to the pods and both guards."""
    _check_free_ranges()
    record.steps.append("netns")
    record.save()
    _run("ip", "netns", "add", NETNS)
    netns_exec("ip", "link", "set", "lo", "up")
    _run("ip", "link", "add", HOST_VETH, "type", "veth", "peer", "name", NODE_VETH,
         "netns", NETNS)
    _run("ip", "addr", "add", f"{HOST_IP}/{LINK_PREFIX}", "dev", HOST_VETH)
    _run("ip", "link", "set", HOST_VETH, "up")
    netns_exec("ip", "addr", "add", f"{NODE_IP}/{LINK_PREFIX}", "dev", NODE_VETH)
    netns_exec("ip", "link", "set", NODE_VETH, "up")
    # Everything not on a connected route goes to a dead end: a veth whose peer stays
    # down in the same netns, so whatever passes the guard is dropped there. The route
    # is needed so such packets reach FORWARD, where the guard REJECTs them at once;
    # nothing can leave even without the guard. (No `dummy` device: the module may be
    # missing.)
    netns_exec("ip", "link", "add", VOID, "type", "veth", "peer", "name", VOID_PEER)
    netns_exec("ip", "link", "set", VOID, "up")
    netns_exec("ip", "route", "add", "default", "dev", VOID)
    # The API server (host) answers pods and reaches pod IPs (logs, probes, Prometheus).
    _run("ip", "route", "add", POD_CIDR, "via", NODE_IP, "dev", HOST_VETH)
    # Host processes reach Service IPs through the node's kube-proxy (e.g. Prometheus
    # scraping a Service); one kube-proxy has not rewritten hits the node's guard and
    # is rejected there, instead of following the host's default route out.
    _run("ip", "route", "add", SERVICE_CLUSTER_IP_RANGE, "via", NODE_IP, "dev", HOST_VETH)
    # Pods reach each other through the bridge; Service traffic to pods on the same
    # bridge needs bridged packets to see kube-proxy's rules (per-netns sysctl).
    netns_exec("sh", "-c", "echo 1 > /proc/sys/net/bridge/bridge-nf-call-iptables",
               check=False)
    _install_node_guard()
    record.steps.append("host-guard")
    record.save()
    _install_host_guard()


# Positions in GUARD_CHAIN (see _install_node_guard), for tests reading the counters.
GUARD_RULE_SERVICE = 1
GUARD_RULE_FROM_PODS = 4


def _install_node_guard() -> None:
    reject = ["-j", "REJECT", "--reject-with", "icmp-admin-prohibited"]
    rules = [
        # A Service IP kube-proxy has not rewritten (no such Service, no endpoints yet).
        ["-d", SERVICE_CLUSTER_IP_RANGE, *reject],
        # Pods may talk to pods (same bridge), to the node (INPUT, not here) and to the
        # host's end of the veth (the API server); nothing else.
        ["-i", BRIDGE, "-o", BRIDGE, "-j", "RETURN"],
        ["-i", BRIDGE, "-o", NODE_VETH, "-d", HOST_IP, "-j", "RETURN"],
        ["-i", BRIDGE, *reject],
        # Anything else forwarded towards the host that is not for the host itself, or
        # towards the void.
        ["-o", NODE_VETH, "!", "-d", HOST_IP, *reject],
        ["-o", VOID, *reject],
    ]
    _iptables("-N", GUARD_CHAIN, netns=True)
    for rule in rules:
        _iptables("-A", GUARD_CHAIN, *rule, netns=True)
    # Locally generated packets (kubelet, hostNetwork pods): only the Service rule.
    _iptables("-N", GUARD_OUT_CHAIN, netns=True)
    _iptables("-A", GUARD_OUT_CHAIN, "-d", SERVICE_CLUSTER_IP_RANGE, *reject, netns=True)
    _iptables("-A", GUARD_OUT_CHAIN, "-o", VOID, *reject, netns=True)
    for hook, chain in NODE_GUARD_JUMPS:
        _iptables("-I", hook, "1", "-j", chain, netns=True)


def _install_host_guard() -> None:
    reject = ["-j", "REJECT", "--reject-with", "icmp-admin-prohibited"]
    _iptables("-N", HOST_FORWARD_CHAIN)
    # The host never forwards anything the node sends (the node only talks to the host).
    _iptables("-A", HOST_FORWARD_CHAIN, "-i", HOST_VETH, *reject)
    _iptables("-I", "FORWARD", "1", "-j", HOST_FORWARD_CHAIN)


def _first_rule(hook: str, netns: bool) -> str:
    rules = _iptables("-S", hook, netns=netns, check=False).splitlines()
    return rules[1] if len(rules) > 1 else ""


def guard_rules_ok() -> bool:
    """True when both guards are in place and jumped to first (the tests check this
    before sending anything)."""
    return (all(_first_rule(hook, True) == f"-A {hook} -j {chain}"
                for hook, chain in NODE_GUARD_JUMPS)
            and f"-A FORWARD -j {HOST_FORWARD_CHAIN}" in _iptables("-S", "FORWARD")
            and SERVICE_CLUSTER_IP_RANGE in _run("ip", "route", "show", "dev", HOST_VETH))


def guard_settled() -> bool:
    """Once the kubelet (KUBE-FIREWALL in OUTPUT) and kube-proxy (KUBE-FORWARD in FORWARD)
    have prepended their jumps, put the guard's back on top; True when it is first. They
    only prepend a jump that is missing, so it stays first afterwards."""
    if ("-j KUBE-FIREWALL" not in _iptables("-S", "OUTPUT", netns=True)
            or "-j KUBE-FORWARD" not in _iptables("-S", "FORWARD", netns=True)):
        return False
    ensure_guard_first()
    return guard_rules_ok()


def ensure_guard_first() -> None:
    """Put the node guard's jumps back at the top of FORWARD/OUTPUT if kube-proxy or the
    kubelet inserted rules above them."""
    for hook, chain in NODE_GUARD_JUMPS:
        if _first_rule(hook, True) == f"-A {hook} -j {chain}":
            continue
        _delete_jumps(hook, chain, netns=True)
        _iptables("-I", hook, "1", "-j", chain, netns=True)


def guard_packets(rule: int) -> int:
    """Packets the node guard's rule number `rule` (GUARD_RULE_*) has matched so far."""
    out = _iptables("-L", GUARD_CHAIN, "-v", "-x", "-n", "--line-numbers", netns=True)
    for line in out.splitlines()[2:]:
        words = line.split()
        if words and words[0] == str(rule):
            return int(words[1])
    raise RealNodeError(f"no rule {rule} in {GUARD_CHAIN}:\n{out}")


# --- configuration files ---------------------------------------------------------------

def write_configs(run_dir: Path, spec: RealNodeSpec, ca_cert: Path,
                  proxy_kubeconfig: Path) -> dict[str, Path]:
    """containerd, CNI, kubelet and kube-proxy configuration under <run dir>/node."""
    node = run_dir / "node"
    paths = {
        "containerd_config": node / "containerd" / "config.toml",
        "containerd_root": node / "containerd" / "root",
        "containerd_state": node / "containerd" / "state",
        "containerd_sock": node / "containerd" / "containerd.sock",
        "cni_conf": node / "cni" / "net.d",
        "cni_ipam": node / "cni" / "ipam",
        "kubelet_root": node / "kubelet",
        "pod_logs": node / "pod-logs",
        "kubelet_config": node / "kubelet-config.yaml",
        "resolv_conf": node / "resolv.conf",
        "proxy_config": node / "kube-proxy-config.yaml",
    }
    for key in ("containerd_root", "containerd_state", "cni_conf", "cni_ipam",
                "kubelet_root", "pod_logs"):
        paths[key].mkdir(parents=True, exist_ok=True)
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    paths["containerd_config"].write_text(f"""\
version = 2
root = "{paths['containerd_root']}"
state = "{paths['containerd_state']}"
[grpc]
  address = "{paths['containerd_sock']}"
[metrics]
  address = ""
[{cri}]
  sandbox_image = "{PAUSE_IMAGE}"
  # Without CAP_SYS_RESOURCE runc cannot lower oom_score_adj below containerd's own:
  # every sandbox would fail with "can't get final child's PID from pipe: EOF".
  restrict_oom_score_adj = true
  disable_apparmor = true
  enable_selinux = false
[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"
[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[{cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false
[{cri}.cni]
  bin_dir = "/usr/lib/cni"
  conf_dir = "{paths['cni_conf']}"
[plugins."io.containerd.internal.v1.opt"]
  path = "{node / 'containerd' / 'opt'}"
""")
    (paths["cni_conf"] / "10-kubesweep.conflist").write_text(json.dumps({
        "cniVersion": "1.0.0",
        "name": "kubesweep",
        "plugins": [{
            "type": "bridge", "bridge": BRIDGE, "isGateway": True, "ipMasq": False,
            "hairpinMode": True,
            "ipam": {"type": "host-local", "dataDir": str(paths["cni_ipam"]),
                     "ranges": [[{"subnet": POD_CIDR, "gateway": POD_GATEWAY}]],
                     "routes": [{"dst": "0.0.0.0/0"}]},
        }],
    }, indent=2))
    # No nameserver: a pod's DNS lookup fails at once instead of leaving the machine.
    paths["resolv_conf"].write_text("")
    # JSON is YAML.
    paths["kubelet_config"].write_text(json.dumps({
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": NODE_IP,
        "port": KUBELET_PORT,
        "readOnlyPort": 0,
        "healthzBindAddress": NODE_IP,
        "healthzPort": KUBELET_HEALTHZ_PORT,
        "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": True},
                           "x509": {"clientCAFile": str(ca_cert)}},
        "authorization": {"mode": "Webhook"},
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": "/",
        "failCgroupV1": False,
        "failSwapOn": False,
        "containerRuntimeEndpoint": f"unix://{paths['containerd_sock']}",
        "resolvConf": str(paths["resolv_conf"]),
        "podLogsDir": str(paths["pod_logs"]),
        "podCIDR": POD_CIDR,
        "maxPods": 110,
        "serializeImagePulls": False,
        # Never delete the imported images (they cannot be pulled again) and never
        # evict for disk on a shared build machine.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%",
                         "imagefs.available": "1%", "nodefs.inodesFree": "1%"},
        "protectKernelDefaults": False,
        "shutdownGracePeriod": "0s",
        "staticPodPath": "",
        "registerNode": True,
        "nodeStatusReportFrequency": "1m",
    }, indent=2))
    paths["proxy_config"].write_text(json.dumps({
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",
        "clientConnection": {"kubeconfig": str(proxy_kubeconfig)},
        "hostnameOverride": spec.name,
        "clusterCIDR": POD_CIDR,
        "bindAddress": NODE_IP,
        "healthzBindAddress": f"{NODE_IP}:{KUBE_PROXY_HEALTHZ_PORT}",
        "metricsBindAddress": "127.0.0.1:10249",
        # Leave the host-wide conntrack table size and timeouts alone.
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s",
                      "tcpCloseWaitTimeout": "0s"},
        "nodePortAddresses": [f"{NODE_IP}/32"],
    }, indent=2))
    return paths


def record_host_state(record: HostRecord) -> None:
    """Before the kubelet starts: remember the host-wide sysctls it will change and
    which of its fixed directories exist, and create its device-plugin directory."""
    for name in SYSCTLS:
        value = _read_sysctl(name)
        if value is not None:
            record.sysctls[name] = value
    record.created_var_lib_kubelet = not Path("/var/lib/kubelet").exists()
    record.created_container_logs_dir = not CONTAINER_LOGS_DIR.exists()
    DEVICE_PLUGIN_DIR.mkdir(parents=True, exist_ok=True)
    record.steps.append("kubelet")
    record.save()


def containerd_argv(paths: dict[str, Path]) -> list[str]:
    """containerd in the node netns with its own config."""
    return _in_netns("containerd", "--config", str(paths["containerd_config"]))


def kubelet_argv(spec: RealNodeSpec, paths: dict[str, Path], kubeconfig: Path) -> list[str]:
    """The kubelet in the node netns."""
    return _in_netns(
        str(control_plane_binary("kubelet")), f"--config={paths['kubelet_config']}",
        f"--kubeconfig={kubeconfig}", f"--root-dir={paths['kubelet_root']}",
        f"--hostname-override={spec.name}", f"--node-ip={NODE_IP}", "--v=2")


def kube_proxy_argv(paths: dict[str, Path]) -> list[str]:
    """kube-proxy (iptables mode) in the node netns."""
    return _in_netns(str(control_plane_binary("kube-proxy")),
                     f"--config={paths['proxy_config']}", "--v=2")


def device_plugin_argv(spec: RealNodeSpec) -> list[str]:
    """The fake nvidia.com/gpu device plugin (the socket directory is the same in every
    netns; it is a file)."""
    return [str(control_plane_binary("fake-gpu-plugin")), f"-count={spec.gpus}",
            f"-dir={DEVICE_PLUGIN_DIR}"]


def import_images(paths: dict[str, Path], images_dir: Path, log_path: Path) -> list[str]:
    """`ctr images import` every *.tar in images_dir into the k8s.io namespace; returns
    the archives imported."""
    archives = sorted(images_dir.glob("*.tar"))
    with open(log_path, "ab") as log:
        for archive in archives:
            proc = subprocess.run(
                ["ctr", "--address", str(paths["containerd_sock"]), "--namespace", "k8s.io",
                 "images", "import", "--no-unpack=false", str(archive)],
                stdout=log, stderr=subprocess.STDOUT)
            if proc.returncode != 0:
                raise RealNodeError(f"importing {archive} into containerd failed; "
                                    f"see {log_path}")
    return [a.name for a in archives]


def image_names(paths: dict[str, Path]) -> list[str]:
    """Image names the node's containerd has in the k8s.io namespace."""
    out = _run("ctr", "--address", str(paths["containerd_sock"]), "--namespace", "k8s.io",
               "images", "list", "--quiet")
    return [line for line in out.splitlines() if line and not line.startswith("sha256:")]


# --- teardown ---------------------------------------------------------------------------

def _cgroup_dirs() -> list[Path]:
    """Every <hierarchy>/kubepods on this host (v1 controllers and the unified one)."""
    found = []
    for hierarchy in [CGROUP_FS, *CGROUP_FS.iterdir()] if CGROUP_FS.is_dir() else []:
        d = hierarchy / KUBEPODS
        if d.is_dir():
            found.append(d)
    return found


def kill_pod_processes(timeout: float = 15.0) -> int:
    """SIGKILL every process in the kubelet's pod cgroups (containers outlive a killed
    shim); returns how many were killed."""
    killed: set[int] = set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = set()
        for top in _cgroup_dirs():
            for procs in top.rglob("cgroup.procs"):
                with contextlib.suppress(OSError):
                    pids.update(int(p) for p in procs.read_text().split())
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        killed |= pids
        time.sleep(0.2)
    return len(killed)


def _remove_cgroups() -> None:
    for top in _cgroup_dirs():
        # Children before parents; rmdir is the only way to remove a cgroup.
        for d in sorted((p for p in top.rglob("*") if p.is_dir()),
                        key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                d.rmdir()
        with contextlib.suppress(OSError):
            top.rmdir()


_libc = ctypes.CDLL(None, use_errno=True)
_MNT_DETACH = 2


def _mount_points() -> list[str]:
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            # Field 5 is the mount point, with spaces etc. octal-escaped.
            points.append(line.split()[4].encode().decode("unicode_escape"))
    return points


def unmount_under(root: str, extra: list[str] | None = None) -> list[str]:
    """Lazily unmount every mount below `root` (deepest first) and the `extra` mount
    points; returns what was unmounted."""
    done = []
    for _ in range(5):  # a bind mount can hide another at the same point
        points = [p for p in _mount_points()
                  if p.startswith(root.rstrip("/") + "/") or p in (extra or [])]
        if not points:
            break
        for p in sorted(set(points), key=lambda p: p.count("/"), reverse=True):
            if _libc.umount2(p.encode(), _MNT_DETACH) == 0:
                done.append(p)
    return done


def _links_into(run_dir: str) -> list[Path]:
    try:
        entries = list(CONTAINER_LOGS_DIR.iterdir())
    except FileNotFoundError:
        return []
    return [e for e in entries if e.is_symlink()
            and os.readlink(e).startswith(run_dir.rstrip("/") + "/")]


def _remove_log_links(run_dir: str, remove_dir: bool) -> None:
    for link in _links_into(run_dir):
        link.unlink(missing_ok=True)
    if remove_dir:
        with contextlib.suppress(OSError):
            CONTAINER_LOGS_DIR.rmdir()  # only if empty: someone else may use it now


def teardown(record: HostRecord) -> list[str]:
    """Undo everything `record` says was set up (best effort, every step attempted);
    returns the problems met, including anything still left on the host. The node's
    processes must be stopped already; hold machine_lock()."""
    problems: list[str] = []

    def step(what: str, fn: Any) -> None:
        try:
            fn()
        except Exception as e:  # keep going: the other steps still need undoing
            problems.append(f"{what}: {e}")

    step("pod processes", kill_pod_processes)
    if record.run_id:
        step("leftover processes", lambda: processes.kill_run(record.run_id))
    new_netns = [f"/run/netns/{n}" for n in _netns_entries()
                 if n.startswith("cni-") and n not in record.netns_before]
    if record.run_dir:
        step("mounts", lambda: unmount_under(record.run_dir, new_netns))
    for path in new_netns:
        with contextlib.suppress(OSError):
            os.unlink(path)
    if "netns" in record.steps:
        # Deleting the netns takes its bridge, veths, routes, sysctls and every
        # iptables rule in it (KUBE-*, CNI, the guard) along.
        step("netns", lambda: _run("ip", "netns", "delete", NETNS, check=False))
        step("veth", lambda: _run("ip", "link", "delete", HOST_VETH, check=False))
    if "host-guard" in record.steps:
        for hook, chain in (("FORWARD", HOST_FORWARD_CHAIN),):
            _delete_jumps(hook, chain)
            _iptables("-F", chain, check=False)
            _iptables("-X", chain, check=False)
    if "kubelet" in record.steps:
        step("cgroups", _remove_cgroups)
        for name, value in record.sysctls.items():
            _write_sysctl(name, value)
        step("device plugins", lambda: shutil.rmtree(DEVICE_PLUGIN_DIR, ignore_errors=True))
        if record.run_dir:
            step("container log links", lambda: _remove_log_links(
                record.run_dir, record.created_container_logs_dir))
        if record.created_var_lib_kubelet:
            step("/var/lib/kubelet", lambda: shutil.rmtree("/var/lib/kubelet",
                                                            ignore_errors=True))
    # Checked before the registry goes: until then no other session can set up a node
    # whose netns, chains or cgroups would look like ours.
    problems += [f"left on the host: {what}" for what in leftovers(record.run_dir or None)
                 if not what.startswith("registry ")]
    with contextlib.suppress(FileNotFoundError):
        REGISTRY.unlink()
    return problems


def leftovers(run_dir: str | None = None) -> list[str]:
    """What a real node would have left on the host (empty after a clean `down`):
    the netns, the host veth, guard chains, pod cgroups, mounts, device-plugin sockets."""
    found = []
    if NETNS in _netns_entries():
        found.append(f"network namespace {NETNS}")
    if Path("/sys/class/net", HOST_VETH).exists():
        found.append(f"interface {HOST_VETH}")
    chains = _iptables("-S", check=False)
    found += [f"iptables chain {c}" for c in (HOST_FORWARD_CHAIN,)
              if f"-N {c}" in chains.splitlines()]
    found += [f"cgroup {d}" for d in _cgroup_dirs()]
    if run_dir:
        found += [f"mount {p}" for p in _mount_points()
                  if p.startswith(run_dir.rstrip("/") + "/")]
    if DEVICE_PLUGIN_DIR.exists() and any(DEVICE_PLUGIN_DIR.iterdir()):
        found.append(f"files in {DEVICE_PLUGIN_DIR}")
    if run_dir:
        found += [f"log link {p}" for p in _links_into(run_dir)]
    if REGISTRY.exists():
        found.append(f"registry {REGISTRY}")
    return found


def sweep_dead(run_dir: Path) -> list[str]:
    """Tear down a real node recorded for `run_dir` whose processes are all gone (a
    crashed `up` or pytest run); returns the problems met."""
    with machine_lock():
        record = HostRecord.load()
        if record is None or record.run_dir != str(run_dir) or record.busy():
            return []
        return teardown(record)


def hold_for_stop(run_id: str) -> None:
    """Add this process to the owners of run `run_id`'s node, so no other session takes
    the host over while this one stops the node's processes."""
    with machine_lock():
        record = HostRecord.load()
        if record is not None and record.run_id == run_id and os.getpid() not in record.owner_pids:
            record.owner_pids.append(os.getpid())
            record.save()


def release(run_id: str) -> list[str] | None:
    """Tear down run `run_id`'s node (its processes stopped) and give the host back;
    returns the problems met, or None when the host holds no node of that run."""
    with machine_lock():
        record = HostRecord.load()
        if record is None or record.run_id != run_id:
            return None
        return teardown(record)
