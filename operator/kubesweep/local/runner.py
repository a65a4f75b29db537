"""The local back end: runs each trial's command as a subprocess on this machine."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from kubesweep import rules
from kubesweep.local.results import ResultsError, ResultsWriter, read_results
from kubesweep.local.view import View
from kubesweep.rules import MUTABLE_FIELDS
from kubesweep.spec import Sweep
from kubesweep.template import local_command
from kubesweep.trial_output import MetricLog
from kubesweep.tuner import Outcome, Trial, Tuner
from kubesweep.warm_start import read_local

#: Seconds a trial gets between SIGTERM and SIGKILL when it is stopped.
STOP_GRACE_SECONDS = 5.0


@dataclass
class Running:
    """A trial whose process is running."""

    trial: Trial
    process: subprocess.Popen[str]
    log: MetricLog
    log_file: IO[str]
    log_path: Path
    started: float = field(default_factory=time.monotonic)
    stop_reason: str | None = None
    stop_sent: float | None = None


@dataclass
class RunResult:
    """How a local sweep ended."""

    tuner: Tuner
    outcome: Outcome | None
    interrupted: bool
    results_path: Path

    @property
    def exit_code(self) -> int:
        """0 when the sweep succeeded, 1 when it failed, 130 when interrupted."""
        if self.interrupted:
            return 130
        return 0 if self.outcome is not None and self.outcome.phase == "Succeeded" else 1


class LocalRunner:
    """Drives a Tuner with subprocesses, `parallelism` at a time."""

    def __init__(self, sweep: Sweep, workdir: Path, results_path: Path, *, resume: bool = False,
                 view: View | None = None) -> None:
        self.sweep = sweep
        self.spec = sweep.spec
        self.name = sweep.metadata.name or "sweep"
        self.workdir = workdir
        self.results_path = results_path
        self.log_dir = results_path.parent / "logs"
        self.view = view or View(stream=sys.stdout)
        # earlier sweeps' results live next to this one's (kubesweep-results/NAME/)
        self.warm_read = read_local(self.spec, results_path.parent.parent)
        self.tuner = Tuner(self.spec, name=self.name, prior=self.warm_read)
        self.requeue: list[Trial] = []
        self.resume = resume
        if resume:
            self._load_previous()
        self.events: queue.Queue[tuple[str, int, str | int]] = queue.Queue()
        self.running: dict[int, Running] = {}

    def _load_previous(self) -> None:
        if not self.results_path.exists():
            raise ResultsError(f"--resume: {self.results_path} does not exist; run without "
                               "--resume to start the sweep")
        recorded = read_results(self.results_path)
        if recorded.header is not None:
            self._check_same_sweep(recorded.header)
        for trial in recorded.finished:
            self.tuner.add(trial.params, trial.value, trial.state, metrics=trial.metrics,
                           history=trial.history, reason=trial.reason, index=trial.index,
                           name=trial.name)
        for trial in recorded.interrupted:
            self.requeue.append(self.tuner.add(trial.params, state="pending",
                                               index=trial.index, name=trial.name))

    def _check_same_sweep(self, header: dict) -> None:
        before = {k: v for k, v in (header.get("spec") or {}).items() if k not in MUTABLE_FIELDS}
        now = {k: v for k, v in self._spec_record().items() if k not in MUTABLE_FIELDS}
        changed = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
        if changed:
            raise ResultsError(
                f"--resume: {self.results_path} was written for a different sweep (spec fields "
                f"changed: {', '.join(changed)}); only {', '.join(MUTABLE_FIELDS)} may change. "
                "Use another --out file or --overwrite to start over"
            )

    def _spec_record(self) -> dict:
        return self.spec.model_dump(mode="json", exclude_none=True)

    # -- running --------------------------------------------------------------------------

    def run(self) -> RunResult:
        """Run the sweep to its end (or until Ctrl-C); every trial is saved as it ends."""
        writer = ResultsWriter(self.results_path, append=self.resume)
        if not self.resume:
            writer.header(self.name, self._spec_record(), self.tuner.seed)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        interrupted = False
        self.view.start(self)
        try:
            self._loop(writer)
        except KeyboardInterrupt:
            interrupted = True
            self.view.note("interrupted: stopping running trials (their results are kept "
                           "when they finish; re-run with --resume to continue)")
            self._stop_all("interrupted", hard_deadline=STOP_GRACE_SECONDS)
            self._drain(writer, record_stopped=False)
        finally:
            writer.close()
            self.view.finish(self)
        return RunResult(self.tuner, self.tuner.outcome, interrupted, self.results_path)

    def _loop(self, writer: ResultsWriter) -> None:
        while True:
            self._launch(writer)
            outcome = self.tuner.outcome
            if outcome is not None and self.running:
                self._stop_all(rules.stop_reason(outcome))
            if not self.running:
                # _launch filled every free slot it could: nothing runs, nothing more will
                return
            self._handle_events(writer, timeout=0.2)
            self._enforce_stop_deadlines()
            self.view.refresh(self)

    def _launch(self, writer: ResultsWriter) -> None:
        while len(self.running) < self.spec.parallelism and self.tuner.outcome is None:
            trial = self.requeue.pop(0) if self.requeue else self.tuner.ask()
            if trial is None:
                return
            self._start(trial, writer)

    def _start(self, trial: Trial, writer: ResultsWriter) -> None:
        argv, extra_env = local_command(self.spec, trial.params, trial.name, trial.index,
                                        self.name,
                                        params_file=self.log_dir / f"{trial.name}.params.json")
        env = dict(os.environ)
        env.update(extra_env)
        env["PYTHONUNBUFFERED"] = "1"
        # `python` in a manifest should mean the interpreter kubesweep runs in
        env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
        log_path = self.log_dir / f"{trial.name}.log"
        log_file = log_path.open("w", encoding="utf-8")
        writer.start(trial)
        try:
            process = subprocess.Popen(
                argv, cwd=self.workdir, env=env, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True, bufsize=1,
                errors="replace", start_new_session=True,
            )
        except (OSError, ValueError) as exc:  # ValueError: a NUL byte in a parameter value
            why = getattr(exc, "strerror", None) or exc
            log_file.write(f"cannot start {argv[0]!r}: {why}\n")
            log_file.close()
            self.tuner.tell(trial, None, "failed",
                            reason=f"cannot start {argv[0]!r}: {why} "
                            f"(working directory {self.workdir})")
            writer.end(trial, 0.0, log_path)
            self.view.finished(self, trial)
            return
        running = Running(trial, process, MetricLog(self.spec.objective), log_file, log_path)
        self.running[trial.index] = running
        threading.Thread(target=self._pump, args=(trial.index, process), daemon=True).start()
        self.view.started(self, trial)

    def _pump(self, index: int, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self.events.put(("line", index, line))
        self.events.put(("exit", index, process.wait()))

    def _handle_events(self, writer: ResultsWriter, timeout: float) -> None:
        try:
            kind, index, payload = self.events.get(timeout=timeout)
        except queue.Empty:
            return
        while True:
            if kind == "line":
                self._on_line(self.running[index], str(payload))
            else:
                self._on_exit(self.running.pop(index), int(payload), writer)
            try:
                kind, index, payload = self.events.get_nowait()
            except queue.Empty:
                return

    def _on_line(self, run: Running, line: str) -> None:
        run.log_file.write(line)
        report = run.log.feed(line)
        if report is None or run.stop_reason is not None:
            return
        step, value = run.log.history[-1]
        self.tuner.report(run.trial, step, value)
        reason = self.tuner.should_stop(run.trial)
        if reason:
            self._stop(run, reason)

    def _on_exit(self, run: Running, code: int, writer: ResultsWriter,
                 record_stopped: bool = True) -> None:
        run.log_file.close()
        duration = time.monotonic() - run.started
        metrics = dict(run.log.latest)
        verdict = rules.judge(run.log, code, self.spec)
        if run.stop_reason is not None:
            if not record_stopped:
                return
            self.tuner.tell(run.trial, verdict.value, "stopped", metrics=metrics,
                            reason=run.stop_reason)
        else:
            reason = verdict.reason and f"{verdict.reason} (log: {run.log_path})"
            self.tuner.tell(run.trial, verdict.value, verdict.state, metrics=metrics,
                            reason=reason)
        writer.end(run.trial, duration, run.log_path)
        self.view.finished(self, run.trial)

    # -- stopping -------------------------------------------------------------------------

    def _stop(self, run: Running, reason: str) -> None:
        if run.stop_reason is not None:
            return
        run.stop_reason = reason
        run.stop_sent = time.monotonic()
        _signal_group(run.process, signal.SIGTERM)

    def _stop_all(self, reason: str, hard_deadline: float | None = None) -> None:
        for run in self.running.values():
            self._stop(run, reason)
        if hard_deadline is not None:
            deadline = time.monotonic() + hard_deadline
            for run in self.running.values():
                try:
                    run.process.wait(timeout=max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    _signal_group(run.process, signal.SIGKILL)

    def _enforce_stop_deadlines(self) -> None:
        now = time.monotonic()
        for run in self.running.values():
            if run.stop_sent is not None and now - run.stop_sent > STOP_GRACE_SECONDS:
                _signal_group(run.process, signal.SIGKILL)

    def _drain(self, writer: ResultsWriter, record_stopped: bool) -> None:
        """Collect the exits of stopped processes after an interrupt."""
        deadline = time.monotonic() + STOP_GRACE_SECONDS + 2
        while self.running and time.monotonic() < deadline:
            try:
                kind, index, payload = self.events.get(timeout=0.2)
            except queue.Empty:
                continue
            if index not in self.running:
                continue
            if kind == "line":
                self.running[index].log_file.write(str(payload))
            else:
                self._on_exit(self.running.pop(index), int(payload), writer, record_stopped)


def _signal_group(process: subprocess.Popen[str], sig: signal.Signals) -> None:
    """Signal the trial's whole process group: training code often forks data loaders."""
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass
