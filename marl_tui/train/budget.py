"""What a run will allocate, weighed before anything is allocated.

`check_budget(config)` estimates the memory a run needs from its sizes alone: the copies
of the environment and the steps the loop keeps for frames, the replay buffer or rollout
(twice: a checkpoint copies it), the networks with their gradients, Adam moments and
targets, and one update's activations. Where the total exceeds what the machine has
available, the run is refused with one line naming the knob that costs most, before a
single tensor exists. It also refuses settings under which a learner could never update.

The estimate counts tensors the way the algorithms lay them out (float32, long actions,
one-hot agent ids); it is meant to be within a small factor of the peak, and errs high.
Nothing here allocates: sizes come from the environment's spec, read off a one-copy probe.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from marl_tui.algos.maddpg import critic_width
from marl_tui.algos.registry import algorithm_class, needs_discrete, resolve_hparams
from marl_tui.envs.base import DiscretisedEnv, EnvSpec, make_env
from marl_tui.errors import UserError
from marl_tui.train.loop import TRAIL
from marl_tui.train.run_config import RunConfig

FLOAT = 4  # bytes: networks, observations and buffers are float32
LONG = 8  # bytes: discrete actions
# Loops that each keep TRAIL steps by reference: training, and evaluation or the greedy view.
LOOPS = 2
# Temporaries of an update beyond the activations counted (autograd saves inputs and outputs
# of every layer; the optimiser's step reads and writes each parameter a few times).
SLACK = 2.0


@dataclass(frozen=True)
class Need:
    """One thing a run allocates: what it is, the knob that sets its size, its bytes."""

    what: str
    knob: str
    bytes: float


def gib(n: float) -> str:
    return f"{n / 2**30:,.1f} GiB" if n >= 2**30 else f"{n / 2**20:,.0f} MiB"


def available_memory() -> int | None:
    """Bytes this process may still allocate: MemAvailable (Linux), else physical memory,
    whichever of them the address-space limit (ulimit -v) lowers. None where unknown."""
    avail: int | None = None
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    if avail is None:
        try:
            avail = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            avail = None
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY:
            avail = soft if avail is None else min(avail, soft)
    except (ImportError, OSError, ValueError):
        pass
    return avail


def _mlp(d_in: int, d_out: int, hidden: int) -> int:
    """Parameters of a two-hidden-layer network (networks.mlp)."""
    return d_in * hidden + hidden + hidden * hidden + hidden + hidden * d_out + d_out


def _agent_mlp(n: int, d_in: int, d_out: int, hidden: int, shared: bool) -> int:
    """Parameters of networks.AgentMLP: one network with the agent id, or one per agent."""
    return _mlp(d_in + n, d_out, hidden) if shared else n * _mlp(d_in, d_out, hidden)


def estimate(algo: str, hp: Any, spec: EnvSpec, copies: int, env_floats_per_copy: int,
             envs: str = "--envs") -> list[Need]:
    """The run's allocations, largest knobs named. `env_floats_per_copy`: the environment's
    own working memory in one step, per copy (float64 counts as two); `envs`: the knob that
    set the number of copies (the flag, or the scenario's parallel_envs)."""
    n, o, s = spec.n_agents, spec.obs_dim, spec.state_dim
    discrete = spec.action_space.kind == "discrete"
    d_act = spec.action_space.n if discrete else spec.action_space.dims
    a_bytes = LONG if discrete else FLOAT * spec.action_space.dims  # one agent's action
    knob = f"train.{algo}"
    # One step as a StepOutcome holds it: obs, state, actions (twice), reward, a few info fields.
    step = copies * (FLOAT * (n * o + s + 6 * n) + 2 * a_bytes * n)
    needs = [
        Need("steps kept for frames", f"{envs} {copies:,}", LOOPS * (TRAIL + 2) * step),
        Need("the environment's working memory", f"{envs} {copies:,}",
             LOOPS * copies * env_floats_per_copy * FLOAT),
    ]
    hidden = getattr(hp, "hidden", 0)
    # Each step the policy acts on every copy: activations of its hidden layers.
    needs.append(Need("acting on every copy", f"{envs} {copies:,}", copies * n * hidden * 2 * FLOAT))
    transition = FLOAT * (2 * n * o + 2 * s + n + 2) + a_bytes * n
    if algo == "mappo":
        t = hp.rollout_length
        samples = t * copies
        per = FLOAT * (n * o + 2 * s + 3 * n + 2) + a_bytes * n
        # The rollout, its copy in a checkpoint, the update's values, advantages and returns,
        # and every sample's value computed at once (hidden activations included).
        needs.append(Need("the rollout", f"{knob}.rollout_length = {t:,} (x {copies:,} copies)",
                          samples * (2 * per + 6 * n * FLOAT + 2 * n * hidden * FLOAT)))
        params = _agent_mlp(n, o, d_act, hidden, True) + _mlp(s, n, hidden) + n
        mb = -(-samples // hp.minibatches)
        # One minibatch through both networks, forward and backward.
        act = mb * n * (o + n + 3 * hidden + d_act) * FLOAT * 2
        needs.append(Need("an update's activations", f"{knob}.minibatches = {hp.minibatches}"
                          f" (rollout of {samples:,} samples)", act))
        needs.append(Need("the networks", f"{knob}.hidden = {hidden:,}", 4 * params * FLOAT))
    elif algo in ("maddpg", "qmix"):
        buf = hp.buffer_size
        needs.append(Need("the replay buffer (and its copy in a checkpoint)",
                          f"{knob}.buffer_size = {buf:,}", 2 * buf * transition))
        batch = hp.batch_size
        if algo == "maddpg":
            d_critic = critic_width(spec, hp.critic)
            params = 2 * _agent_mlp(n, o, d_act, hidden, False) + 2 * _agent_mlp(n, d_critic, 1, hidden, False)
            # Critic inputs are built per agent (each sees everything), for the batch and its target.
            act = batch * n * (3 * d_critic + 8 * hidden) * FLOAT + 2 * batch * transition
        else:
            mh = hp.mixer_hidden
            params = 2 * (_agent_mlp(n, o, d_act, hidden, hp.shared)
                          + 4 * _mlp(s, mh, mh) + s * n * mh)
            act = batch * n * (2 * (o + n) + 8 * hidden + 2 * d_act + 4 * mh) * FLOAT + 2 * batch * transition
        needs.append(Need("an update's activations", f"{knob}.batch_size = {batch:,}", act))
        # Online networks: weights, gradients, two Adam moments; targets: weights only.
        needs.append(Need("the networks", f"{knob}.hidden = {hidden:,}", 2.5 * params * FLOAT))
    return [Need(x.what, x.knob, x.bytes * SLACK) for x in needs]


def _never_learns(algo: str, hp: Any, where: str) -> str | None:
    """A setting under which the learner can never take a step, or None."""
    size, batch = getattr(hp, "buffer_size", None), getattr(hp, "batch_size", None)
    if size is not None and batch is not None and batch > size:
        return (f"{where}train.{algo}.batch_size = {batch:,} is larger than buffer_size = {size:,}: "
                "no batch could ever be drawn, so nothing would be learnt; lower batch_size or "
                "raise buffer_size")
    return None


def env_floats_per_copy(env: Any) -> int:
    """The environment's working memory in one step, per copy, in float32 units. The warehouse
    draws Poisson demand by inverse CDF: a float64 table of max_k + 1 values per agent, and a
    few temporaries of that size."""
    max_k = getattr(env, "max_k", 0)
    return env.spec.n_agents * (max_k + 1) * 2 * 4 if max_k else 0


def check_budget(config: RunConfig, origin: str | None = None) -> list[Need]:
    """Refuse (UserError) a run that cannot learn or would need more memory than the machine
    has available; returns the estimate. `origin` names where the settings came from (a
    checkpoint) when they are not the user's flags and scenario file."""
    sc = config.scenario
    where = f"{origin}: its stored " if origin else ""
    hp = resolve_hparams(config.algo, sc, config.overrides)
    problem = _never_learns(config.algo, hp, where or f"{sc.source}: ")
    if problem:
        raise UserError(problem)
    probe = make_env(sc, n_envs=1, seed=config.resolved_seed(), device="cpu")
    spec = probe.spec
    if spec.action_space.kind == "continuous" and needs_discrete(config.algo):
        spec = DiscretisedEnv(probe).spec
    copies = sc.parallel_envs if config.n_envs is None else config.n_envs
    envs = "parallel_envs =" if config.n_envs is None else "--envs"
    needs = estimate(config.algo, hp, spec, copies, env_floats_per_copy(probe), envs)
    total = sum(x.bytes for x in needs)
    avail = available_memory()
    if avail is not None and total > avail:
        big = max(needs, key=lambda x: x.bytes)
        title = algorithm_class(config.algo).title
        # A hyperparameter's size is set in the scenario file (or the algorithm's defaults): name it.
        where = where or (f"{sc.source}: " if big.knob.startswith(("train.", "parallel_envs")) else "")
        raise UserError(
            f"{where}{title} on {sc.name} would need about {gib(total)} of memory ({big.what}: "
            f"{gib(big.bytes)}, set by {big.knob}), and this machine has {gib(avail)} available; "
            f"lower {big.knob.split(' ')[0]}"
        )
    return needs
