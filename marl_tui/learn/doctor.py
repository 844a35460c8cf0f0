"""The doctor: the study guide's Part 7 pathologies, detected in a run's metrics rows.

Input is what metrics.csv holds (one row per finished training episode), so the same detectors
run live (`Doctor`, a Run callback) and on any run directory (`diagnose_run_dir`). Each
detector reads the facts of the run (algorithm, scenario kind, gamma, reward scale, episode
length, the oracle's team return) and returns a typed Finding or None:

    loss_rising    the critic's / value loss keeps rising: a critic chasing a moving target
    plateau        the score has not improved over a window, far from the oracle
    oscillation    the policy's mean price / order swings back and forth
    exploration    entropy (MAPPO) or epsilon / noise (QMIX / MADDPG) collapsed, far from the oracle
    overfitting    greedy play scores far below training (when a greedy return is known)
    divergence     |Q| or |V| far above max|r| / (1 - gamma), or a loss far above its square

The "gap" to the oracle per scenario kind: in pricing (general-sum) the team's return is not
what the stores maximise, so the gap there is the distance of the mean price from the Nash
price (exploitability would do, but exploration noise keeps it well above 0 in training rows);
elsewhere it is the oracle's team return minus the team return.
"""

from __future__ import annotations

import csv
import math
import statistics
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import msgspec
import tomllib

from marl_tui.errors import UserError
from marl_tui.train.loop import EpisodeEnd
from marl_tui.train.run import Callback, Run

WINDOW = 10  # rows (finished episodes) per window
LOSS_GROWTH = 3.0  # loss_rising: the last window's mean over the lowest earlier window's mean
PLATEAU_PROGRESS = 0.02  # plateau: less than this share of the initial gap closed in 2 windows...
PLATEAU_GAP = 0.3  # ...while at least this share of the initial gap remains
OSCILLATION_FLIPS = 0.5  # oscillation: at least this share of the moves reverse the one before...
OSCILLATION_SWING = 0.1  # ...by more than this share of the action's range, on average
ENTROPY_DROP = 1.5  # exploration (continuous MAPPO): entropy fell by this many nats...
ENTROPY_SHARE = 0.1  # ...(discrete MAPPO): to this share of its first value
EXPLORATION_FLOOR = 0.01  # QMIX epsilon / MADDPG noise at or below this counts as none
OVERFIT_SHARE = 0.2  # overfitting: greedy below training by this share of the return's size
DIVERGENCE_FACTOR = 10.0  # divergence: |value| above this x max|r̄| / (1 - gamma)
# The NaN guard (train/callbacks/nan_guard.py) stops a run at this x the same bound: far enough
# above the doctor's warning that no honest value reaches it.
DIVERGENCE_FAULT_FACTOR = 100.0

LOSS_COLUMN = {"maddpg": "critic_loss", "mappo": "value_loss", "qmix": "td_loss"}
# Value-like columns and whether they are per agent (1) or the team's sum (n agents).
VALUE_COLUMNS = {"maddpg": (("q_mean", False), ("y_mean", False)),
                 "mappo": (("V_mean", False), ("return_mean", False)),
                 "qmix": (("q_total_mean", True), ("y_mean", True))}
ACTION_COLUMN = {"pricing": "mean_price", "warehouse": "mean_order"}

ADVICE: dict[str, dict[str, str]] = {
    "loss_rising": {
        "maddpg": "increase the replay buffer (buffer_size), reduce the learning rates (lr, "
                  "critic_lr), use a smaller tau",
        "mappo": "check the advantage computation: are the returns computed correctly (gamma, "
                 "bootstrapping at the time limit)?",
        "qmix": "reduce lr, update the target network less often (target_update_interval), "
                "or lower gamma",
    },
    "plateau": {
        "maddpg": "design intermediate rewards or shape the reward; check that the critic sees "
                  "what the reward depends on",
        "mappo": "check the entropy: exploration must not have collapsed (raise entropy_coef); "
                 "shape the reward with intermediate signals",
        "qmix": "design intermediate rewards; anneal epsilon more slowly (eps_anneal_steps)",
    },
    "oscillation": {
        "maddpg": "use MAPPO instead (a stochastic policy damps the cycle); add constraints "
                  "to the action space (e.g. a minimum price)",
        "mappo": "check PPO clipping: make sure clip_eps is large enough; add constraints to "
                 "the action space",
        "qmix": "slow the target: a longer target_update_interval or a lower lr",
    },
    "exploration": {
        "maddpg": "keep more exploration noise (noise_std, noise_final) or anneal it more "
                  "slowly (noise_decay_steps)",
        "mappo": "raise the entropy bonus (entropy_coef, e.g. 0.01): the policy stopped trying "
                 "other actions before it found good ones",
        "qmix": "keep a higher final epsilon (eps_end) or anneal more slowly (eps_anneal_steps)",
    },
    "overfitting": {
        "maddpg": "make observations sufficient for the decision; sometimes mask what the "
                  "critic sees; monitor training and greedy returns separately",
        "mappo": "make observations sufficient for the decision; sometimes mask what the "
                 "centralised value sees; monitor training and greedy returns separately",
        "qmix": "make observations sufficient; the mixer sees the state, the agents do not",
    },
    "divergence": {
        "maddpg": "lower critic_lr or gamma, switch on huber, keep grad_clip small",
        "mappo": "lower lr or gamma; keep value normalisation and grad_clip on",
        "qmix": "lower gamma (0.99 diverges easily), lower lr, switch on huber, keep grad_clip",
    },
}


class Facts(msgspec.Struct, frozen=True, kw_only=True):
    """What the detectors know about a run besides its rows."""

    algo: str
    kind: str  # scenario kind: pricing | warehouse | fulfillment | other
    n_agents: int
    episode_length: int
    gamma: float  # 0 for baselines
    reward_scale: float
    continuous: bool  # the algorithm acts on continuous actions
    action_range: float = 0.0  # high − low of the scenario's action (price, order); 0: none
    oracle_team_return: float | None = None  # per episode
    oracle_kpis: dict[str, float] = {}  # the scenario's KPIs under the oracle (pricing: Nash)


class Row(msgspec.Struct, frozen=True, kw_only=True):
    """One metrics.csv row: a finished training episode."""

    env_steps: int
    updates: int
    team_return: float
    agent_returns: tuple[float, ...]
    values: dict[str, float]  # every other column: KPIs and the last update's metrics

    def get(self, key: str) -> float:
        return self.values.get(key, math.nan)


class Finding(msgspec.Struct, frozen=True, kw_only=True):
    code: str  # which detector: loss_rising, plateau, oscillation, exploration, overfitting, divergence
    symptom: str  # one line
    evidence: str  # the numbers that triggered it
    advice: str  # the guide's advice (Part 7) for this algorithm
    env_step: int  # the env step of the row that triggered it

    def line(self) -> str:
        return f"{self.symptom} at env step {self.env_step:,}: {self.evidence}. Advice: {self.advice}"


# ------------------------------------------------------------------------------ helpers


def _finite(xs: Sequence[float]) -> list[float]:
    return [x for x in xs if math.isfinite(x)]


def _learning(rows: Sequence[Row]) -> list[Row]:
    """Rows after the first update (warm-up rows say nothing about learning)."""
    return [r for r in rows if r.updates > 0]


def _series(rows: Sequence[Row], key: str) -> list[float]:
    return [r.get(key) for r in rows]


def gap(row: Row, facts: Facts) -> float:
    """How far the row is from the oracle: |mean price − Nash| (pricing), else oracle − team return."""
    if facts.kind == "pricing":
        return abs(row.get("mean_price") - facts.oracle_kpis.get("mean_price", math.nan))
    if facts.oracle_team_return is None:
        return math.nan
    return facts.oracle_team_return - row.team_return


def _gap_share(rows: Sequence[Row], facts: Facts) -> tuple[float, float]:
    """(the first window's mean gap, the last window's mean gap / it); nan when unknown. Give
    every row: the first window is the untrained (or warm-up) policy."""
    first = _finite([gap(r, facts) for r in rows[:WINDOW]])
    last = _finite([gap(r, facts) for r in rows[-WINDOW:]])
    if not first or not last:
        return math.nan, math.nan
    g0 = statistics.fmean(first)
    if g0 <= 1e-9 * max(1.0, abs(facts.oracle_team_return or 1.0)):
        return g0, math.nan
    return g0, statistics.fmean(last) / g0


def _advice(code: str, facts: Facts) -> str:
    return ADVICE[code].get(facts.algo, "")


# ------------------------------------------------------------------------------ detectors


def loss_rising(rows: Sequence[Row], facts: Facts) -> Finding | None:
    key = LOSS_COLUMN.get(facts.algo)
    learn = _learning(rows)
    if key is None or len(learn) < 3 * WINDOW:
        return None
    losses = _series(learn, key)
    means = [statistics.fmean(losses[k:k + WINDOW]) for k in range(0, len(losses) - WINDOW + 1)]
    lowest = min(means[:-WINDOW])
    last, before = means[-1], means[-WINDOW - 1] if len(means) > WINDOW else means[0]
    if not (math.isfinite(last) and lowest > 0) or last < LOSS_GROWTH * lowest or last <= before:
        return None
    return Finding(code="loss_rising", symptom=f"{key} is rising",
                   evidence=f"mean {last:.4g} over the last {WINDOW} episodes, {last / lowest:.1f}× "
                            f"its lowest ({lowest:.4g}): the critic is chasing a moving target",
                   advice=_advice("loss_rising", facts), env_step=learn[-1].env_steps)


def progress(rows: Sequence[Row], facts: Facts) -> float:
    """The share of the initial gap closed by the last 2 windows against the 2 before (negative:
    it widened); nan with fewer than 4 windows of learning rows or no gap."""
    learn = _learning(rows)
    g0, _ = _gap_share(rows, facts)
    if len(learn) < 4 * WINDOW or not (math.isfinite(g0) and g0 > 0):
        return math.nan
    recent = _finite([gap(r, facts) for r in learn[-2 * WINDOW:]])
    earlier = _finite([gap(r, facts) for r in learn[-4 * WINDOW:-2 * WINDOW]])
    if not recent or not earlier:
        return math.nan
    return (statistics.fmean(earlier) - statistics.fmean(recent)) / g0


def plateau(rows: Sequence[Row], facts: Facts) -> Finding | None:
    # Pricing is general-sum: prices may honestly settle anywhere between Nash and collusion
    # (REFERENCE §2), so a steady price far from Nash is a result, not a pathology.
    learn = _learning(rows)
    if facts.kind == "pricing" or len(learn) < 4 * WINDOW:
        return None
    g0, share = _gap_share(rows, facts)
    closed = progress(rows, facts)
    if not math.isfinite(share) or share < PLATEAU_GAP or not math.isfinite(closed):
        return None
    if abs(closed) >= PLATEAU_PROGRESS:  # moving (better or worse): not a plateau
        return None
    what = "|mean price − Nash|" if facts.kind == "pricing" else "the gap to the oracle's team return"
    return Finding(code="plateau", symptom="no improvement",
                   evidence=f"{what} closed {100 * closed:.1f}% of its initial {g0:.4g} over the last "
                            f"{2 * WINDOW} episodes (against the {2 * WINDOW} before), and "
                            f"{100 * share:.0f}% of it remains",
                   advice=_advice("plateau", facts), env_step=learn[-1].env_steps)


def oscillation(rows: Sequence[Row], facts: Facts) -> Finding | None:
    """The policy's action (mean price, mean order) swings back and forth: moves that matter
    (over 1% of the action's range) reverse often, and are large (a tenth of the range, on
    average)."""
    key = ACTION_COLUMN.get(facts.kind)
    learn = _learning(rows)
    if key is None or facts.action_range <= 0 or len(learn) < 2 * WINDOW:
        return None
    tail = learn[-2 * WINDOW:]
    xs = _series(tail, key)
    if len(_finite(xs)) < len(xs):
        return None
    span = facts.action_range
    moves = [b - a for a, b in zip(xs, xs[1:], strict=False) if abs(b - a) > 0.01 * span]
    if len(moves) < WINDOW:
        return None
    flips = sum(a * b < 0 for a, b in zip(moves, moves[1:], strict=False)) / (len(moves) - 1)
    swing = statistics.fmean(abs(m) for m in moves)
    if flips < OSCILLATION_FLIPS or swing <= OSCILLATION_SWING * span:
        return None
    return Finding(code="oscillation", symptom=f"{key.replace('_', ' ')} oscillates",
                   evidence=f"over the last {2 * WINDOW} episodes {100 * flips:.0f}% of its moves reverse "
                            f"the one before, by {swing:.4g} on average ({100 * swing / span:.0f}% of "
                            f"the range {span:g})",
                   advice=_advice("oscillation", facts), env_step=tail[-1].env_steps)


def exploration(rows: Sequence[Row], facts: Facts) -> Finding | None:
    learn = _learning(rows)
    if len(learn) < 2 * WINDOW:
        return None
    _, share = _gap_share(rows, facts)
    if math.isfinite(share) and share < PLATEAU_GAP:
        return None  # near the oracle: a settled policy may stop exploring
    last = learn[-1]
    evidence = ""
    if facts.algo == "mappo":
        first, now = learn[0].get("entropy"), last.get("entropy")
        if facts.continuous and first - now >= ENTROPY_DROP:
            evidence = f"policy entropy fell from {first:.3f} to {now:.3f} nats (σ shrank " \
                       f"{math.exp(first - now):.1f}×)"
        elif (not facts.continuous and first > 0 and now <= ENTROPY_SHARE * first
              and abs(progress(rows, facts)) < PLATEAU_PROGRESS):
            # A discrete policy normally ends deterministic: collapse is a pathology only
            # when it froze learning (no progress over the last windows).
            evidence = f"policy entropy fell from {first:.3f} to {now:.3f} nats while the score " \
                       "stopped improving"
    else:
        key = {"qmix": "epsilon", "maddpg": "noise"}.get(facts.algo)
        if key is not None and last.get(key) <= EXPLORATION_FLOOR:
            evidence = f"{key} is {last.get(key):.3g}"
    if not evidence:
        return None
    remains = f", and {100 * share:.0f}% of the initial gap to the oracle remains" \
        if math.isfinite(share) else ""
    return Finding(code="exploration", symptom="exploration collapsed", evidence=evidence + remains,
                   advice=_advice("exploration", facts), env_step=last.env_steps)


def overfitting(rows: Sequence[Row], facts: Facts, greedy_return: float | None) -> Finding | None:
    learn = _learning(rows)
    if greedy_return is None or len(learn) < WINDOW:
        return None
    train = statistics.fmean(r.team_return for r in learn[-WINDOW:])
    size = max(abs(train), abs(facts.oracle_team_return or 0.0))
    if size <= 0 or train - greedy_return <= OVERFIT_SHARE * size:
        return None
    return Finding(code="overfitting", symptom="greedy play is far worse than training",
                   evidence=f"greedy team return {greedy_return:.4g} against {train:.4g} in training "
                            f"(last {WINDOW} episodes): {100 * (train - greedy_return) / size:.0f}% lower",
                   advice=_advice("overfitting", facts), env_step=learn[-1].env_steps)


def reward_bound(max_abs_reward: float, facts: Facts) -> float:
    """max|r̄| / (1 − γ) per agent in the learners' units (reward × reward_scale), from the
    largest |mean reward per step| of an agent in an episode, in raw units."""
    return max_abs_reward * facts.reward_scale / (1.0 - facts.gamma)


def value_bound(rows: Sequence[Row], facts: Facts) -> float:
    """reward_bound over the rows' episodes; nan before any row."""
    rewards = _finite([abs(a) / max(facts.episode_length, 1) for r in rows for a in r.agent_returns])
    if not rewards:
        return math.nan
    return reward_bound(max(rewards), facts)


def diverged(values: Mapping[str, float], facts: Facts, bound: float,
             factor: float) -> tuple[str, float, float] | None:
    """(column, value, limit) of the first value-like column of the algorithm whose |value| is
    above factor × bound (× agents for a team value), or a loss above that limit squared; None
    when all are within (or the bound is unknown)."""
    if not math.isfinite(bound) or bound <= 0:
        return None
    columns = [(key, factor * bound * (facts.n_agents if team else 1), False)
               for key, team in VALUE_COLUMNS.get(facts.algo, ())]
    if facts.algo in LOSS_COLUMN:  # a squared error: its scale is the value's squared
        team = any(t for _, t in VALUE_COLUMNS[facts.algo])
        columns.append((LOSS_COLUMN[facts.algo], (factor * bound * (facts.n_agents if team else 1)) ** 2, True))
    for key, limit, _ in columns:
        if key not in values:
            continue
        value = values[key]
        if not math.isfinite(value) or abs(value) > limit:
            return key, value, limit
    return None


def divergence(rows: Sequence[Row], facts: Facts) -> Finding | None:
    learn = _learning(rows)
    if not learn:
        return None
    last = learn[-1]
    found = diverged(last.values, facts, value_bound(rows, facts), DIVERGENCE_FACTOR)
    if found is None:
        return None
    key, value, limit = found
    return Finding(code="divergence", symptom=f"{key} diverges",
                   evidence=f"|{key}| = {abs(value):.4g}, above {DIVERGENCE_FACTOR:g}× "
                            f"max|r̄|/(1−γ) = {limit:.4g} (γ = {facts.gamma:g})",
                   advice=_advice("divergence", facts), env_step=last.env_steps)


DETECTORS: tuple[Callable[[Sequence[Row], Facts], Finding | None], ...] = (
    divergence, loss_rising, oscillation, exploration, plateau,
)


def diagnose(rows: Sequence[Row], facts: Facts, greedy_return: float | None = None) -> list[Finding]:
    """Every detector on the rows (oldest first); at most one finding per detector."""
    if facts.algo not in LOSS_COLUMN:  # baselines do not learn: nothing to diagnose
        return []
    found = [f for detect in DETECTORS if (f := detect(rows, facts)) is not None]
    if (f := overfitting(rows, facts, greedy_return)) is not None:
        found.append(f)
    return found


# ------------------------------------------------------------------------------ live: a Run callback


def facts_of_run(run: Run) -> Facts:
    spec = run.env.spec
    space, levels = spec.action_space, spec.action_levels
    span = space.high - space.low if space.kind == "continuous" else \
        (max(levels) - min(levels) if levels else 0.0)
    return Facts(algo=run.run_config.algo, kind=run.scenario.kind, n_agents=spec.n_agents,
                 action_range=float(span),
                 episode_length=spec.episode_length, gamma=float(getattr(run.hp, "gamma", 0.0)),
                 reward_scale=spec.reward_scale, continuous=spec.action_space.kind == "continuous",
                 oracle_team_return=run.oracle.team_return, oracle_kpis=dict(run.oracle.kpis))


class Doctor(Callback):
    """Runs the detectors after every finished episode (a few hundred float operations) and
    keeps the current findings. Memory is bounded: the first window of learning rows (the
    baseline) and the last 6 windows.

        doctor = Doctor(on_change=print_them)      # build_run(config, extra=[doctor])
        doctor.findings                            # tuple[Finding, ...], newest diagnosis

    on_change(findings) is called, in the training thread, when the set of findings' codes
    changes (a new symptom, or one gone).
    """

    def __init__(self, on_change: Callable[[tuple[Finding, ...]], None] | None = None) -> None:
        self.on_change = on_change
        self.facts: Facts | None = None
        self.head: list[Row] = []
        self.tail: deque[Row] = deque(maxlen=6 * WINDOW)
        self.findings: tuple[Finding, ...] = ()

    @property
    def rows(self) -> list[Row]:
        """The baseline window and the recent rows, oldest first."""
        return self.head + list(self.tail)

    def on_start(self, run: Run) -> None:
        self.facts = facts_of_run(run)

    def on_episode_end(self, run: Run, ended: EpisodeEnd) -> None:
        if self.facts is None:
            self.facts = facts_of_run(run)
        row = Row(env_steps=ended.env_steps, updates=run.updates, team_return=ended.team_return,
                  agent_returns=ended.agent_returns, values={**run.metrics, **ended.kpis})
        if row.updates > 0 and len(self.head) < WINDOW:
            self.head.append(row)
        else:
            self.tail.append(row)
        findings = tuple(diagnose(self.rows, self.facts))
        changed = {f.code for f in findings} != {f.code for f in self.findings}
        self.findings = findings
        run.findings = tuple(f.line() for f in findings)
        if changed and self.on_change is not None:
            self.on_change(findings)


# ------------------------------------------------------------------------------ a run directory


class Diagnosis(msgspec.Struct, frozen=True, kw_only=True):
    run_dir: str
    facts: Facts
    episodes: int  # rows read
    greedy_return: float | None
    findings: tuple[Finding, ...]


def _float(text: str) -> float:
    try:
        return float(text) if text != "" else math.nan
    except ValueError:
        return math.nan


def read_rows(path: Path) -> list[Row]:
    """metrics.csv as Rows (empty cells are nan)."""
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = {"env_steps", "updates", "team_return"} - set(reader.fieldnames or ())
        if missing:
            raise UserError(f"{path}: not a marl-tui metrics.csv (no {', '.join(sorted(missing))} "
                            "column); give a run directory made by `marl-tui train`")
        rows = []
        for line in reader:
            agents = tuple(_float(v) for k, v in line.items() if k.startswith("return_"))
            rows.append(Row(env_steps=int(_float(line["env_steps"])), updates=int(_float(line["updates"])),
                            team_return=_float(line["team_return"]), agent_returns=agents,
                            values={k: _float(v) for k, v in line.items()
                                    if k not in ("env_steps", "updates", "team_return", "episodes")
                                    and not k.startswith("return_")}))
    return rows


def diagnose_run_dir(run_dir: Path) -> Diagnosis:
    """Read RUN_DIR/metrics.csv, config.toml, scenario.toml (and summary.json if there) and
    diagnose. A directory that is not a run: UserError (one line)."""
    import json

    from marl_tui.config import parse_scenario

    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: no such run directory (runs are made by `marl-tui train` "
                        "and the app, under runs/)")
    for name in ("metrics.csv", "config.toml", "scenario.toml"):
        if not (run_dir / name).is_file():
            raise UserError(f"{run_dir}: not a run directory (no {name}); give a folder made by "
                            "`marl-tui train ... --out DIR` or the app")
    try:
        config = tomllib.loads((run_dir / "config.toml").read_text(encoding="utf-8"))
        algo = str(config["run"]["algo"])
        gamma = float(config.get("hyperparameters", {}).get("gamma", 0.0))
    except (tomllib.TOMLDecodeError, KeyError, TypeError, ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"{run_dir / 'config.toml'}: cannot read it ({exc})") from None
    sc = parse_scenario((run_dir / "scenario.toml").read_text(encoding="utf-8"),
                        str(run_dir / "scenario.toml"))
    summary = {}
    if (run_dir / "summary.json").is_file():
        try:
            summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            summary = {}
    greedy = summary.get("kpis", {}).get("team_return")
    oracle = summary.get("oracle_team_return")
    m = sc.model
    span = {"pricing": lambda: m.price_max - m.price_min, "warehouse": lambda: m.max_order}.get(
        sc.kind, lambda: 0.0)()
    facts = Facts(algo=algo, kind=sc.kind, n_agents=sc.agents, episode_length=sc.episode_length,
                  action_range=float(span),
                  gamma=gamma, reward_scale=float(getattr(sc.model, "reward_scale", 1.0)),
                  continuous=sc.kind != "fulfillment" and algo != "qmix",
                  oracle_team_return=float(oracle) if oracle is not None else None,
                  oracle_kpis={k: float(v) for k, v in summary.get("oracle_kpis", {}).items()})
    rows = read_rows(run_dir / "metrics.csv")
    greedy_return = float(greedy) if greedy is not None else None
    return Diagnosis(run_dir=str(run_dir), facts=facts, episodes=len(rows), greedy_return=greedy_return,
                     findings=tuple(diagnose(rows, facts, greedy_return)))


def report_text(d: Diagnosis) -> str:
    """What `marl-tui doctor RUN_DIR` prints."""
    f = d.facts
    head = (f"doctor: {d.run_dir} · {f.algo} on {f.kind} · {d.episodes} episodes "
            f"(metrics.csv rows) · γ {f.gamma:g}")
    if not d.findings:
        learning = "" if d.episodes >= 2 * WINDOW else \
            f" (only {d.episodes} episodes: most detectors need {2 * WINDOW} to {4 * WINDOW})"
        return f"{head}\nno pathology found{learning}"
    lines = [head]
    for k in d.findings:
        lines += [f"• {k.symptom} (at env step {k.env_step:,})", f"    {k.evidence}",
                  f"    advice (study guide Part 7): {k.advice}"]
    return "\n".join(lines)
