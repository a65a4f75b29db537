"""Parameter values an attacker or an unlucky user might write, and a trial that checks
they arrived verbatim, for the same test locally (`kubesweep run`) and on the real node.

A value must reach the trial only as a string in argv and in the environment (and in
`KUBESWEEP_PARAMS`): never through a shell, never re-parsed as YAML, never expanded as a
placeholder or a Kubernetes `$(VAR)` reference a second time."""

from __future__ import annotations

import base64
import json

HOSTILE_VALUES: list[str] = [
    "$(rm -rf /)",
    # references the kubelet would expand, unescaped: V is the trial's own env var (set
    # from this very value), KUBERNETES_SERVICE_HOST one every container gets
    "$(V) $(KUBERNETES_SERVICE_HOST) $(HOSTNAME) $$ end",
    "${params.v}",
    "${trial.index} ${env.HOME}",
    "\"; echo pwned; \"",
    "'; echo pwned; '",
    "`id` && echo pwned",
    "line one\nline two\n",
    "tab\there | cat /etc/passwd > /tmp/x",
    "- yaml: [list, {of: things}]",
    "null",
    "  leading and trailing spaces  ",
    "unicode: héllo ✓ 😀",
    "x" * 10_240,
]


def checking_trial() -> str:
    """A `python -c` program for a trial with `${params.v}` as argv[1] and in env V: it
    prints `loss=<index of the value in HOSTILE_VALUES>` when argv, V and
    KUBESWEEP_PARAMS all hold exactly one of them, else `loss=-1`. The expected values
    travel base64-encoded, so nothing in the program is itself a placeholder."""
    encoded = base64.b64encode(json.dumps(HOSTILE_VALUES).encode()).decode()
    return ("import base64, json, os, sys\n"
            f"expected = json.loads(base64.b64decode('{encoded}'))\n"
            "v, e = sys.argv[1], os.environ['V']\n"
            "p = json.loads(os.environ['KUBESWEEP_PARAMS'])['v']\n"
            "ok = v == e == p and v in expected\n"
            "print(f'loss={expected.index(v) if ok else -1}')\n")
