"""The ask/tell core both back ends drive.

The tuner owns a spec, a strategy and the trial history. Besides the trials it keeps
one flag, set when the strategy has no point left to propose (a finished grid), which
its next `ask` sets again after a rebuild. So `Tuner(spec, seed, history=trials)` rebuilt
from recorded trials (the operator does this on every pass) asks exactly what the
uninterrupted tuner would have: each trial's suggestion depends only on the seed, the
trial's index and the trials before it. When a sweep ends and how a trial's value is
summarised are rules shared with the back ends (`kubesweep.rules`).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, overload

import numpy as np

from kubesweep import rules
from kubesweep.early_stopping import make_rule
from kubesweep.rules import Outcome
from kubesweep.space import Params, Space
from kubesweep.spec import Goal, SweepSpec, parse_search_spec
from kubesweep.strategies import Observation, make_strategy
from kubesweep.strategies.multi_objective import pareto_mask, random_weights, scalarise

TrialState = Literal["pending", "succeeded", "failed", "stopped"]
FINISHED_STATES = ("succeeded", "failed", "stopped")


@dataclass
class Trial:
    """One parameter set and what became of it."""

    index: int
    name: str
    params: Params
    state: TrialState = "pending"
    #: the trial's value of the objective metric (its summary: last or best report)
    value: float | None = None
    #: latest value of every metric the trial reported
    metrics: dict[str, float] = field(default_factory=dict)
    #: (step, value) of each intermediate report of the objective
    history: list[tuple[int, float]] = field(default_factory=list)
    #: why it failed or was stopped, in words a user can act on
    reason: str | None = None
    #: seconds the trial ran, when the back end knows it (kept for the trials table)
    duration: float | None = None

    @property
    def finished(self) -> bool:
        """True once the trial succeeded, failed or was stopped."""
        return self.state in FINISHED_STATES

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready record of the trial."""
        data = asdict(self)
        data["history"] = [list(p) for p in self.history]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Trial:
        """Rebuild a trial from `to_dict` output."""
        return cls(
            index=int(data["index"]),
            name=str(data["name"]),
            params=dict(data["params"]),
            state=data.get("state", "succeeded"),
            value=data.get("value"),
            metrics=dict(data.get("metrics") or {}),
            history=[(int(s), float(v)) for s, v in data.get("history") or []],
            reason=data.get("reason"),
            duration=None if data.get("duration") is None else float(data["duration"]),
        )


class Tuner:
    """Ask for trials, report their progress, tell their results.

    A spec without `trialTemplate` is fine: how trials run is the back end's concern.

    >>> tuner = Tuner({"method": "random", "maxTrials": 2,
    ...                "metric": {"name": "acc", "goal": "maximize"},
    ...                "parameters": {"lr": {"min": 0.001, "max": 0.1}}}, seed=0)
    >>> trial = tuner.ask()
    >>> _ = tuner.tell(trial, 0.93)
    >>> tuner.best is trial
    True
    """

    def __init__(
        self,
        spec: SweepSpec | Mapping[str, Any],
        seed: int | None = None,
        history: Iterable[Trial | Mapping[str, Any]] = (),
        name: str = "trial",
        prior: Iterable[Trial | Mapping[str, Any]] = (),
    ) -> None:
        """`prior`: finished trials of earlier sweeps (warm start). Those whose parameters
        fit this space and that report every objective seed the model; they are never
        this sweep's trials (no budget, no best, no index)."""
        self.spec = parse_search_spec(dict(spec) if isinstance(spec, Mapping) else spec)
        self.seed = self.spec.seed if seed is None else int(seed)
        self.name = name
        self.space = Space(self.spec.parameters)
        self.strategy = make_strategy(self.spec.method, self.space,
                                      constrained=bool(self.spec.constraints),
                                      objectives=len(self.spec.objectives))
        metric = self.spec.metric
        self.maximize = metric is not None and metric.goal is Goal.maximize
        self.objectives = self.spec.objectives
        #: +1 to minimise, -1 to maximise each objective (losses are sign * value)
        self.signs = np.array([-1.0 if m.goal is Goal.maximize else 1.0
                               for m in self.objectives])
        self.constraints = list(self.spec.constraints or [])
        self.prior: list[Trial] = [t for t in (
            r if isinstance(r, Trial) else Trial.from_dict(r) for r in prior)
            if self._usable_prior(t)]
        self.rule = make_rule(self.spec.earlyTerminate, self.maximize)
        self.budget = self.spec.budget
        self.trials: list[Trial] = []
        self._indexes: set[int] = set()
        self._exhausted = False
        for record in history:
            trial = record if isinstance(record, Trial) else Trial.from_dict(record)
            self._insert(trial)

    # -- building the history -------------------------------------------------------------

    def _insert(self, trial: Trial) -> Trial:
        if trial.index in self._indexes:
            raise ValueError(f"trial index {trial.index} is already recorded")
        self._indexes.add(trial.index)
        # histories arrive in index order almost always: appending keeps a rebuild of a
        # 10,000-trial sweep linear (the operator rebuilds on every pass)
        if not self.trials or trial.index > self.trials[-1].index:
            self.trials.append(trial)
        else:
            bisect.insort(self.trials, trial, key=lambda t: t.index)
        return trial

    def add(
        self,
        params: Mapping[str, Any],
        value: float | None = None,
        state: TrialState = "succeeded",
        *,
        metrics: Mapping[str, float] | None = None,
        history: Iterable[tuple[int, float]] = (),
        reason: str | None = None,
        index: int | None = None,
        name: str | None = None,
    ) -> Trial:
        """Record a trial run elsewhere (or before a restart) into the history."""
        index = self._next_index() if index is None else index
        trial = Trial(index, name or self.trial_name(index), dict(params))
        trial.history = [(int(s), float(v)) for s, v in history]
        self._insert(trial)
        if state != "pending":
            self.tell(trial, value, state=state, metrics=metrics, reason=reason)
        return trial

    def trial_name(self, index: int) -> str:
        """The deterministic name of trial `index` (e.g. a Job name)."""
        return f"{self.name}-{index}"

    def _next_index(self) -> int:
        return self.trials[-1].index + 1 if self.trials else 0

    # -- asking ---------------------------------------------------------------------------

    @overload
    def ask(self) -> Trial | None: ...

    @overload
    def ask(self, n: int) -> list[Trial]: ...

    def ask(self, n: int | None = None) -> Trial | None | list[Trial]:
        """The next trial to run (None when the sweep needs no more), or a batch of up to n."""
        batch: list[Trial] = []
        # Whether the sweep is over, what the strategy learns from and the pending set are
        # worked out once per batch, not once per trial: each walks every trial (O(n) at
        # 5,000 trials, so O(batch × n) per pass before). Asking cannot change the first
        # two (new trials are pending: they end no sweep and are no observation), and
        # each new trial is added to the pending set as it is made.
        if not self.done:
            # ParEGO's weights (three or more objectives) differ per trial index
            seen = None if len(self.objectives) > 2 else self._observations()
            pending = self._pending_params()
            for _ in range(1 if n is None else n):
                trial = self._ask_one(seen, pending)
                if trial is None:
                    break
                batch.append(trial)
                pending.append(trial.params)
        if n is None:
            return batch[0] if batch else None
        return batch

    def _ask_one(self, seen: list[Observation] | None,
                 pending: list[Params]) -> Trial | None:
        if len(self.trials) >= self.budget or self._exhausted:
            return None
        index = self._next_index()
        rng = np.random.default_rng([self.seed, index])
        observations = self._observations(index) if seen is None else seen
        params = self.strategy.suggest(observations, pending, rng)
        if params is None:
            self._exhausted = True
            return None
        return self._insert(Trial(index, self.trial_name(index), params))

    def _observations(self, index: int = 0) -> list[Observation]:
        """What the strategy learns from: warm-start trials first, then this sweep's."""
        if len(self.objectives) == 2:
            return self._paired()
        if len(self.objectives) > 2:
            return self._scalarised(index)
        metric = self.spec.metric
        impute = metric.impute if metric is not None else "worst"
        seen = [Observation(t.params, self._loss(self._prior_value(t, metric.name)),
                            self._violations(t))
                for t in self.prior] if metric is not None else []
        seen += [Observation(t.params, self._loss(t.value) if t.state != "failed"
                             else self._imputed(t, impute), self._violations(t))
                 for t in self.trials if t.finished]
        while_running = metric.imputeWhileRunning if metric is not None else "false"
        if while_running != "false":
            seen += [Observation(t.params, self._imputed(t, while_running))
                     for t in self._running_with_reports()]
        return seen

    def _paired(self) -> list[Observation]:
        """Two objectives as they are: bayes models each (strategies.ehvi)."""
        finished = [*self.prior, *(t for t in self.trials if t.finished)]
        return [Observation(t.params, None, self._violations(t),
                            tuple(self.objective_losses(t))) for t in finished]

    def _scalarised(self, index: int) -> list[Observation]:
        """Several objectives as one loss: ParEGO's scalarisation with weights drawn for
        this trial index (see strategies.multi_objective)."""
        finished = [*self.prior, *(t for t in self.trials if t.finished)]
        losses = np.array([self.objective_losses(t) for t in finished]).reshape(
            len(finished), len(self.objectives))
        # its own stream: the strategy's rng for this index stays what it would be
        weights = random_weights(len(self.objectives),
                                 np.random.default_rng([self.seed, index, 1]))
        scalar = scalarise(losses, weights)
        return [Observation(t.params, None if math.isnan(s) else float(s), self._violations(t))
                for t, s in zip(finished, scalar, strict=True)]

    def objective_losses(self, trial: Trial) -> list[float]:
        """The trial's objectives (from its metrics) as losses, lower is better; NaN where
        not reported or the trial did not succeed."""
        out = []
        for metric, sign in zip(self.objectives, self.signs, strict=True):
            value = self._prior_value(trial, metric.name)
            out.append(sign * value if value is not None and math.isfinite(value)
                       and trial.state == "succeeded" else math.nan)
        return out

    @staticmethod
    def _prior_value(trial: Trial, name: str) -> float | None:
        """The trial's value of metric `name` (its summary value if it optimised it)."""
        value = trial.metrics.get(name)
        return float(value) if isinstance(value, (int, float)) else None

    def _violations(self, trial: Trial) -> tuple[float, ...]:
        return tuple(c.violation(trial.metrics.get(c.metric)) for c in self.constraints)

    def _usable_prior(self, trial: Trial) -> bool:
        """A warm-start trial the model can use: succeeded, reports every objective,
        and has parameters this space can produce."""
        if trial.state != "succeeded" or not self.objectives:
            return False
        if any(self._prior_value(trial, m.name) is None for m in self.objectives):
            return False
        from kubesweep.warm_start import fits  # local: warm_start imports this module

        return fits(self.space, trial.params)

    def feasible(self, trial: Trial) -> bool:
        """True when the trial reported every constrained metric within its bounds."""
        return all(c.violation(trial.metrics.get(c.metric)) <= 0 for c in self.constraints)

    def infeasibility(self, trial: Trial) -> str | None:
        """Why a finished trial is infeasible (for status and tables), None if it is not."""
        for c in self.constraints:
            value = trial.metrics.get(c.metric)
            violation = c.violation(value)
            if math.isnan(violation):
                return f"reported no {c.metric!r} value (constrained)"
            if violation > 0:
                bound = f"max {c.max:g}" if c.max is not None and value > c.max \
                    else f"min {c.min:g}"
                return f"{c.metric}={value:g} outside {bound}"
        return None

    def _running_with_reports(self) -> list[Trial]:
        """Pending trials that reported the objective (modelled under imputeWhileRunning)."""
        metric = self.spec.metric
        if metric is None or metric.imputeWhileRunning == "false":
            return []
        return [t for t in self.trials if not t.finished and t.history]

    def _imputed(self, trial: Trial, how: str) -> float | None:
        """The loss bayes assumes for a failed or running trial (W&B's `metric.impute`).

        `worst` returns None: the strategy then uses the worst loss of all trials (the
        default for failed trials). `best`/`latest` use what the trial itself reported,
        and fall back to the worst when it reported nothing finite.
        """
        losses = [loss for _, v in trial.history for loss in [self._loss(v)] if loss is not None]
        if how == "worst" or not losses:
            return None
        return min(losses) if how == "best" else losses[-1]

    def _pending_params(self) -> list[Params]:
        modelled = {t.index for t in self._running_with_reports()}
        return [t.params for t in self.trials if not t.finished and t.index not in modelled]

    def _loss(self, value: float | None) -> float | None:
        if value is None or not math.isfinite(value):
            return None
        return -value if self.maximize else value

    # -- progress of running trials -------------------------------------------------------

    def report(self, trial: Trial, step: int, value: float) -> None:
        """Record an intermediate value of the objective at `step`."""
        trial.history.append((int(step), float(value)))

    def should_stop(self, trial: Trial) -> str | None:
        """Why the early-termination rule stops `trial` now, or None to let it run."""
        if self.rule is None or trial.finished:
            return None
        mine = self._loss_history(trial)
        others = [self._loss_history(t) for t in self.trials if t is not trial]
        return self.rule.should_stop(mine, others)

    def _loss_history(self, trial: Trial) -> list[tuple[int, float]]:
        sign = -1.0 if self.maximize else 1.0
        return [(s, sign * v) for s, v in trial.history]

    # -- telling --------------------------------------------------------------------------

    def tell(
        self,
        trial: Trial,
        value: float | None,
        state: TrialState = "succeeded",
        *,
        metrics: Mapping[str, float] | None = None,
        reason: str | None = None,
    ) -> Trial:
        """Record a trial's result. A succeeded trial without a finite value becomes failed;
        non-finite values of other metrics are dropped (they cannot be stored as JSON)."""
        if state not in FINISHED_STATES:
            raise ValueError(f"state must be one of {FINISHED_STATES}, got {state!r}")
        if metrics:
            trial.metrics.update(rules.finite_metrics(metrics))
        trial.value = self._summary(trial, value)
        trial.state = state
        trial.reason = reason
        if len(self.objectives) > 1:
            missing = [m.name for m in self.objectives
                       if not math.isfinite(trial.metrics.get(m.name, math.nan))]
            if state == "succeeded" and missing:
                trial.state = "failed"
                trial.reason = reason or f"reported no {missing[0]!r} value"
            return trial
        if self.spec.metric is None:
            # nothing to optimise: a trial that exited cleanly succeeded, whatever it printed
            return trial
        if state == "succeeded" and (trial.value is None or not math.isfinite(trial.value)):
            trial.state = "failed"
            metric = self.spec.metric.name
            trial.reason = reason or (
                f"reported {metric}={trial.value}" if trial.value is not None
                else f"reported no {metric!r} value"
            )
        if trial.value is not None and not math.isfinite(trial.value):
            trial.value = None
        return trial

    def _summary(self, trial: Trial, value: float | None) -> float | None:
        if self.spec.metric is None:
            return None
        if value is None and trial.history:
            value = trial.history[-1][1]
        if self.spec.metric.summary == "last" or value is None or not math.isfinite(value):
            return value
        return rules.summarize([v for _, v in trial.history] + [value],
                               self.spec.metric.summary, self.maximize)

    # -- where the sweep stands -----------------------------------------------------------

    def count(self, state: TrialState) -> int:
        """Number of trials in `state`."""
        return sum(1 for t in self.trials if t.state == state)

    @property
    def pending(self) -> list[Trial]:
        """Trials asked for but not finished."""
        return [t for t in self.trials if not t.finished]

    @property
    def best(self) -> Trial | None:
        """The feasible succeeded trial with the best value (first one on ties); None
        without a metric or with several (see `pareto_front`)."""
        if self.spec.metric is None:
            return None
        done = [t for t in self.trials if t.state == "succeeded" and t.value is not None
                and self.feasible(t)]
        if not done:
            return None
        pick = max if self.maximize else min
        return pick(done, key=lambda t: (t.value, -t.index) if self.maximize
                    else (t.value, t.index))

    @property
    def pareto_front(self) -> list[Trial]:
        """Feasible succeeded trials no other one beats on every objective, in index
        order ([best] with one objective, [] without any)."""
        if len(self.objectives) <= 1:
            return [self.best] if self.best is not None else []
        done = [t for t in self.trials if t.state == "succeeded" and self.feasible(t)]
        losses = np.array([self.objective_losses(t) for t in done]).reshape(
            len(done), len(self.objectives))
        done = [t for t, ok in zip(done, np.all(np.isfinite(losses), axis=1), strict=True)
                if ok]
        if not done:
            return []
        mask = pareto_mask(losses[np.all(np.isfinite(losses), axis=1)])
        return [t for t, keep in zip(done, mask, strict=True) if keep]

    @property
    def outcome(self) -> Outcome | None:
        """Why the sweep is over, or None while it is not (`rules.outcome`, plus what
        several objectives and constraints add: a sweep whose trials all missed the
        constraints, or left the Pareto front empty, failed)."""
        out = rules.outcome(self.trials, self.spec, self.best, self._exhausted)
        if out is None:
            return None
        finished = sum(1 for t in self.trials if t.finished)
        if out.phase == "Succeeded" and out.reason in ("BudgetReached", "GridExhausted"):
            empty = not self.pareto_front if len(self.objectives) > 1 else \
                bool(self.constraints) and not self.objectives and not self._any_feasible()
            if empty:
                return Outcome("Failed", "NoFeasibleTrial" if self.constraints
                               else "NoSuccessfulTrial",
                               f"none of {finished} trials succeeded"
                               + (" within the constraints" if self.constraints else ""))
        if out.reason == "NoSuccessfulTrial" and self.constraints and \
                self.count("succeeded"):
            return Outcome("Failed", "NoFeasibleTrial",
                           f"none of {finished} trials met the constraints")
        return out

    def _any_feasible(self) -> bool:
        return any(t.state == "succeeded" and self.feasible(t) for t in self.trials)

    @property
    def done(self) -> bool:
        """True once the sweep needs no more trials and none is pending."""
        return self.outcome is not None
