"""The `marl-tui` command. Thin: parses options, hands work to the modules that do it.

torch and textual are imported inside the commands that need them, so `--help`,
`--version` and `scenarios` answer at once.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import msgspec
import typer
from typer.exceptions import TyperException

from marl_tui import __version__
from marl_tui.catalogue import find_scenario
from marl_tui.config import (
    ALGOS,
    CHECKPOINT_EVERY,
    COPIES,
    DEVICES,
    EVAL_EPISODES,
    SEED,
    STEPS,
    check_flag,
    is_external_shorthand,
    scenario_choices,
)
from marl_tui.errors import UserError
from marl_tui.text import printable, printable_lines
from marl_tui.tui.terminal import require_terminal

if TYPE_CHECKING:
    from marl_tui.stream.sources import ReplaySource

app = typer.Typer(
    name="marl-tui",
    help="Watch multi-agent reinforcement learning think: MADDPG, MAPPO and QMIX on pricing, "
    "restocking and fulfillment, live in your terminal. With no command: open the app.",
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

def _complete(choices: list[str], incomplete: str) -> list[str]:
    return [c for c in choices if c.startswith(incomplete)]


def complete_scenario(incomplete: str) -> list[str]:
    """Shell completion for a scenario: bundled names and ./scenarios/*.toml."""
    return _complete(scenario_choices(), incomplete)


def complete_algo(incomplete: str) -> list[str]:
    return _complete(list(ALGOS), incomplete.lower())


def complete_device(incomplete: str) -> list[str]:
    return _complete(list(DEVICES), incomplete)


ScenarioArg = Annotated[
    str, typer.Argument(help="a bundled scenario name (see `marl-tui scenarios`), a .toml path, or an "
                        "external env: pettingzoo:MODULE[:FACTORY] or vmas:SCENARIO",
                        autocompletion=complete_scenario)
]


def _algo_name(value: str | None) -> str | None:
    """The screen says MAPPO; --algo MAPPO means the same as --algo mappo."""
    return value.strip().lower() if value else value


ALGO_HELP = " | ".join(ALGOS)
DEVICE_HELP = " | ".join(DEVICES)
AlgoOpt = Annotated[str, typer.Option("--algo", "-a", help=ALGO_HELP, callback=_algo_name,
                                      autocompletion=complete_algo)]
# Ranges of integer options come from config's declarations; Typer checks them and shows them in --help.
StepsOpt = Annotated[int | None, typer.Option(help=f"{STEPS.description} [default: per algorithm]",
                                              min=STEPS.ge, max=STEPS.le)]
SeedOpt = Annotated[int | None, typer.Option(help="random seed [default: the scenario's]", min=SEED.ge, max=SEED.le)]
EnvsOpt = Annotated[int | None, typer.Option("--envs", help=f"{COPIES.description} [default: the scenario's]",
                                             min=COPIES.ge, max=COPIES.le)]
DeviceOpt = Annotated[str, typer.Option(help=DEVICE_HELP, autocompletion=complete_device)]
JsonlOpt = Annotated[bool, typer.Option("--jsonl", help="one JSON object per progress line")]
LrOpt = Annotated[float | None, typer.Option("--lr", help="learning rate [default: per algorithm]")]
GammaOpt = Annotated[float | None, typer.Option("--gamma", help="discount factor γ [default: per algorithm]")]
ExploreOpt = Annotated[
    float | None,
    typer.Option("--explore", help="exploration: MADDPG noise σ, MAPPO entropy bonus, QMIX final ε"),
]


CheckpointEveryOpt = Annotated[
    int | None,
    typer.Option("--checkpoint-every",
                 help="env steps between checkpoints (0: only at the end, on a stop, on request) "
                      "[default: 2,000 batched steps]", min=CHECKPOINT_EVERY.ge, max=CHECKPOINT_EVERY.le),
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"marl-tui {__version__}")
        raise typer.Exit()


@app.callback(invoke_without_command=True)
def _root(
    ctx: typer.Context,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="print the version")
    ] = False,
) -> None:
    if ctx.invoked_subcommand is None:
        require_terminal("the app")
        from marl_tui.tui.launch import launch_app

        launch_app()


@app.command()
def scenarios() -> None:
    """List the bundled scenarios (and any in ./scenarios) with their reference answers."""
    from marl_tui.catalogue import scenario_table

    typer.echo(scenario_table())


@app.command()
def info(
    scenario: ScenarioArg,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Describe one scenario: agents, actions, and its exact reference answer."""
    from marl_tui.catalogue import cached_scenario_info, scenario_info_text

    sc = find_scenario(scenario)
    data = cached_scenario_info(sc)
    stem = Path(sc.source).stem
    # A copied file keeps the name it was copied from: say so, don't rename it (a shorthand has no file).
    if sc.name != stem and not is_external_shorthand(sc.source):
        data["note"] = (f"this file says name = {sc.name!r}, not {stem!r}: its runs are named {sc.name}-…; "
                        f"change `name` in {sc.source} to tell them apart")
    if as_json:  # msgspec writes NaN/inf (Δ where Nash = collusion) as null: valid JSON
        typer.echo(msgspec.json.format(msgspec.json.encode(data), indent=2).decode())
    else:
        typer.echo(printable_lines(scenario_info_text(data)
                                   + (f"\n  note:        {data['note']}" if "note" in data else "")))


def _hp_overrides(lr: float | None, gamma: float | None, explore: float | None,
                  algo: str) -> dict[str, float]:
    """--lr, --gamma and --explore as hyperparameters, checked against the registry's ranges."""
    from marl_tui.algos.registry import HPARAM_RULES, algorithm_class

    cls = algorithm_class(algo)
    if explore is not None and cls.exploration_field is None:
        raise UserError(f"--explore: {algo} has no exploration setting; leave it out")
    fields = {f.name for f in dataclasses.fields(cls.Hyperparameters)}
    out: dict[str, float] = {}
    for flag, key, value in (("--lr", "lr", lr), ("--gamma", "gamma", gamma),
                             ("--explore", cls.exploration_field, explore)):
        if value is None or key is None:
            continue
        if key not in fields:
            raise UserError(f"{flag}: {algo} does not learn, so it has no {key}; leave it out")
        out[key] = check_flag(flag, value, Annotated[float, HPARAM_RULES[key]])
    return out


@app.command()
def train(
    scenario: ScenarioArg,
    algo: AlgoOpt = "mappo",
    steps: StepsOpt = None,
    seed: SeedOpt = None,
    envs: EnvsOpt = None,
    device: DeviceOpt = "cpu",
    out: Annotated[Path | None, typer.Option(help="run directory [default: runs/NAME-ALGO-SEED-TIME]")] = None,
    lr: LrOpt = None,
    gamma: GammaOpt = None,
    explore: ExploreOpt = None,
    jsonl: JsonlOpt = False,
    checkpoint_every: CheckpointEveryOpt = None,
) -> None:
    """Train headless (no terminal needed): progress, a run directory, a final evaluation.

    Ctrl-C, SIGTERM and SIGHUP save a checkpoint before exiting; `marl-tui resume RUN_DIR`
    continues exactly where it stopped."""
    from marl_tui.headless import run_headless

    sc = find_scenario(scenario)
    overrides = _hp_overrides(lr, gamma, explore, algo)
    code = run_headless(sc, algo=algo, steps=steps, seed=seed, n_envs=envs, device=device,
                        out=out, overrides=overrides, jsonl=jsonl, checkpoint_every=checkpoint_every)
    raise typer.Exit(code)


@app.command(name="train-seeds")
def train_seeds(
    scenario: ScenarioArg,
    seed: Annotated[list[int], typer.Option("--seed", help="a seed to train (give --seed once per seed)",
                                            min=SEED.ge, max=SEED.le, show_default=False)],
    algo: AlgoOpt = "mappo",
    steps: StepsOpt = None,
    envs: EnvsOpt = None,
    device: DeviceOpt = "cpu",
    out: Annotated[list[Path] | None, typer.Option(
        "--out", help="a run directory per --seed, in the same order [default: runs/NAME-ALGO-SEED-TIME]",
        show_default=False)] = None,
    lr: LrOpt = None,
    gamma: GammaOpt = None,
    explore: ExploreOpt = None,
    jsonl: JsonlOpt = False,
    checkpoint_every: CheckpointEveryOpt = None,
) -> None:
    """Train several seeds batched in one process: one stacked learner, each seed's numbers those
    of its own `marl-tui train`, each into its own run directory (resume, eval, watch each alone).

    Progress lines follow the first seed; Ctrl-C, SIGTERM and SIGHUP save every seed's checkpoint."""
    from marl_tui.headless.seed_batch import run_seed_batch
    from marl_tui.train.rundir import default_run_dir

    sc = find_scenario(scenario)
    overrides = _hp_overrides(lr, gamma, explore, algo)
    outs = out or [default_run_dir(sc.name, algo, s) for s in seed]
    code = run_seed_batch(sc, algo=algo, seeds=seed, outs=outs, steps=steps, n_envs=envs, device=device,
                          overrides=overrides, jsonl=jsonl, checkpoint_every=checkpoint_every)
    raise typer.Exit(code)


@app.command()
def resume(
    run_dir: Annotated[Path, typer.Argument(help="the run directory to continue (runs/...)")],
    steps: Annotated[
        int | None,
        typer.Option(help="new TOTAL budget in env steps, counted from the run's start (not extra "
                          "steps) [default: the run's own budget]", min=STEPS.ge, max=STEPS.le),
    ] = None,
    device: Annotated[str | None, typer.Option(help=f"{DEVICE_HELP} [default: where it trained]",
                                               autocompletion=complete_device)] = None,
    jsonl: JsonlOpt = False,
) -> None:
    """Continue a stopped run exactly where its last checkpoint left it (same numbers on CPU).

    metrics.csv rows written after that checkpoint are dropped and written again."""
    from marl_tui.headless import resume_headless

    raise typer.Exit(resume_headless(run_dir, steps=steps, device=device, jsonl=jsonl))


@app.command(name="eval")
def eval_(
    target: Annotated[Path, typer.Argument(help="a run directory or a checkpoint .pt file")],
    episodes: Annotated[int, typer.Option(help="episodes of greedy play, exactly")] = EVAL_EPISODES,
    as_json: Annotated[bool, typer.Option("--json", help="print eval.json instead of a table")] = False,
    device: DeviceOpt = "cpu",
) -> None:
    """Greedy evaluation of a trained policy: the scenario's KPIs against the oracle (writes eval.json)."""
    from marl_tui.headless import evaluate_checkpoint

    raise typer.Exit(evaluate_checkpoint(target, episodes=episodes, as_json=as_json, device=device))


@app.command()
def run(
    scenario: Annotated[
        str | None,
        typer.Argument(help="a bundled scenario name, a .toml path or pettingzoo:MODULE / vmas:SCENARIO "
                       "(with --load: optional)",
                       autocompletion=complete_scenario),
    ] = None,
    algo: Annotated[
        str | None,
        typer.Option("--algo", "-a", help=f"{ALGO_HELP} [default: mappo, or the checkpoint's]",
                     callback=_algo_name, autocompletion=complete_algo),
    ] = None,
    steps: StepsOpt = None,
    seed: SeedOpt = None,
    envs: EnvsOpt = None,
    device: DeviceOpt = "cpu",
    lr: LrOpt = None,
    gamma: GammaOpt = None,
    explore: ExploreOpt = None,
    load: Annotated[
        Path | None,
        typer.Option("--load", help="continue from a checkpoint (a .pt file or a run directory)"),
    ] = None,
) -> None:
    """Open the app straight on a scenario and algorithm (skips the picker)."""
    if load is None:
        if scenario is None:
            raise UserError("marl-tui run needs a scenario (see `marl-tui scenarios`), or --load CHECKPOINT")
        sc = find_scenario(scenario)
        algo = algo or "mappo"
        from marl_tui.algos.registry import algorithm_class

        algorithm_class(algo)
        overrides = _hp_overrides(lr, gamma, explore, algo)
        require_terminal("marl-tui run")
        from marl_tui.tui.launch import launch_app

        launch_app(scenario=sc, algo=algo, steps=steps, seed=seed, n_envs=envs, device=device,
                   overrides=overrides)
        return
    options, ckpt_path = _load_options(load, scenario, algo, steps, seed, envs, lr, gamma, explore)
    require_terminal("marl-tui run")
    from marl_tui.tui.launch import launch_app

    launch_app(device=device, load=ckpt_path, **options)


@app.command()
def watch(
    target: Annotated[Path, typer.Argument(help="a run directory or a checkpoint .pt file")],
    headless: Annotated[bool, typer.Option("--headless", help="no app: play and print the scores")] = False,
    episodes: Annotated[int, typer.Option(min=1, help="--headless: episodes of greedy play, exactly")] = EVAL_EPISODES,
    device: DeviceOpt = "cpu",
) -> None:
    """Watch a trained policy play, greedily and slowly (no learning), scored against the oracle."""
    if headless:
        from marl_tui.headless import evaluate_checkpoint

        raise typer.Exit(evaluate_checkpoint(target, episodes=episodes, device=device))
    from marl_tui.train.checkpoint import env_steps_of, find_checkpoint, read_checkpoint
    from marl_tui.train.resume import run_config_from

    ckpt_path, _ = find_checkpoint(target)
    ckpt = read_checkpoint(ckpt_path)
    cfg = run_config_from(ckpt, ckpt_path, out_dir=None, device=device)
    require_terminal("marl-tui watch", instead=f"`marl-tui watch {target} --headless`")
    from marl_tui.tui.launch import launch_app

    launch_app(scenario=cfg.scenario, algo=cfg.algo, steps=max(1, env_steps_of(ckpt)), seed=cfg.seed,
               n_envs=cfg.n_envs, device=device, overrides=cfg.overrides, load=ckpt_path, watch=True)


@app.command()
def replay(
    run_dir: Annotated[Path, typer.Argument(help="a run directory (runs/NAME-ALGO-sSEED-TIME)")],
    frames: Annotated[bool, typer.Option("--frames", help="no app: print the recorded moments")] = False,
    jsonl: Annotated[bool, typer.Option("--jsonl", help="with --frames: one JSON object per record")] = False,
) -> None:
    """Go through a recorded run: its moments, its checkpoints and their greedy episodes."""
    from marl_tui.tui.recording import open_recording

    recording = open_recording(run_dir)
    if frames or jsonl:
        _print_records(recording.source, jsonl)
        return
    require_terminal("marl-tui replay", instead=f"`marl-tui replay {run_dir} --frames --jsonl`")
    from marl_tui.tui.launch import launch_replay

    launch_replay(recording)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="address to listen on (0.0.0.0: every interface)")] = "localhost",
    port: Annotated[int, typer.Option(min=1, max=65535, help="port to listen on")] = 8000,
    command: Annotated[str, typer.Option(help="what each browser tab runs")] = "marl-tui",
) -> None:
    """Serve the app to web browsers (textual-serve): each tab gets its own app and runs."""
    try:
        from textual_serve.server import Server
    except ImportError:
        raise UserError("marl-tui serve needs textual-serve: pip install 'marl-tui[serve]'") from None
    typer.echo(f"marl-tui: serving `{command}` on http://{host}:{port} (Ctrl-C stops)", err=True)
    Server(command, host=host, port=port, title="marl-tui").serve()


@app.command()
def compare(
    targets: Annotated[list[str], typer.Argument(
        help="a scenario to train the matrix on, or run directories (or a folder holding them) to compare",
        autocompletion=complete_scenario, show_default=False)],
    algos: Annotated[str | None, typer.Option(help="algorithms, comma-separated [default: maddpg,mappo,qmix]",
                                              show_default=False)] = None,
    seeds: Annotated[int | None, typer.Option(help="seeds per algorithm [default: 5]", show_default=False)] = None,
    steps: Annotated[int | None, typer.Option(help=f"{STEPS.description} per run [default: per algorithm]",
                                              min=STEPS.ge, max=STEPS.le)] = None,
    out: Annotated[Path | None, typer.Option(help="the comparison's folder: a run directory per algorithm "
                                                  "and seed, results.json (marl-eval), CSVs "
                                                  "[default: runs/compare-NAME-TIME]")] = None,
    engine: Annotated[str, typer.Option(help="local (processes here) | ray (a Ray cluster; --out on "
                                             "shared storage)")] = "local",
    address: Annotated[str | None, typer.Option(help="--engine ray: the cluster's address [default: a local "
                                                     "Ray instance]")] = None,
    jobs: Annotated[int | None, typer.Option("--jobs", help="runs at a time [default: one per core]")] = None,
    headless: Annotated[bool, typer.Option("--headless", help="no app: progress lines and a final table")] = False,
    batched_seeds: Annotated[bool | None, typer.Option(
        "--batched-seeds/--separate-seeds",
        help="train an algorithm's seeds batched in one process (one stacked learner; each seed's "
             "numbers those of its own run) or as separate runs [default: separate: on a CPU a batch "
             "costs about what separate runs do]", show_default=False)] = None,
) -> None:
    """Compare algorithms over seeds against the exact answer: train the matrix (or read runs that
    exist, even while they train), chart each algorithm's mean and 95 % band, score the final
    policies (mean, IQM, bootstrap CIs) and write marl-eval JSON and CSVs."""
    from marl_tui.compare.command import CompareOptions, run_compare

    raise typer.Exit(run_compare(CompareOptions(
        targets=tuple(targets), algos=algos, seeds=seeds, steps=steps, out=out, engine=engine,
        address=address, jobs=jobs, headless=headless, batched_seeds=batched_seeds)))


def _print_records(source: ReplaySource, jsonl: bool) -> None:
    """The recording as text lines, or as JSON lines (the header, then every record)."""

    if jsonl:
        for record in (source.header, *source.frames, *source.episodes):
            typer.echo(msgspec.json.encode(record).decode())
        return
    h = source.header
    typer.echo(f"{h.scenario} · {h.algo} · seed {h.seed}: {len(source.frames)} moments, "
               f"{len(source.episodes)} checkpoint episode{'s' * (len(source.episodes) != 1)}")
    for f in source.frames:
        team = "—" if f.stats.team_return is None else f"{f.stats.team_return:.6g}"
        typer.echo(f"step {f.scene.step:>8}  env steps {f.scene.env_steps:>10}  episodes {f.stats.episodes:>6}"
                   f"  team return {team}")
    for e in source.episodes:
        typer.echo(f"checkpoint at env step {e.env_steps}: greedy team return {e.team_return:.6g} "
                   f"over {e.copies} copies")


def _load_options(load: Path, scenario: str | None, algo: str | None, steps: int | None,
                  seed: int | None, envs: int | None, lr: float | None, gamma: float | None,
                  explore: float | None) -> tuple[dict, Path]:
    """Check a checkpoint for `run --load` and derive the run's options from it.

    Returns (the options of the app's RunRequest, the checkpoint file)."""
    from marl_tui.train.checkpoint import env_steps_of, find_checkpoint, read_checkpoint
    from marl_tui.train.resume import check_compatible, run_config_from

    for name, value in (("--lr", lr), ("--gamma", gamma), ("--explore", explore)):
        if value is not None:
            raise UserError(f"{name} cannot be combined with --load: a loaded run keeps the "
                            "hyperparameters it was trained with")
    ckpt_path, _ = find_checkpoint(load)
    ckpt = read_checkpoint(ckpt_path)
    cfg = run_config_from(ckpt, ckpt_path, out_dir=None, device="cpu")
    algo = algo or cfg.algo
    sc = find_scenario(scenario) if scenario is not None else cfg.scenario
    check_compatible(ckpt, ckpt_path, algo, sc, envs)
    if seed is not None and seed != cfg.seed:
        raise UserError(f"--seed {seed}: the checkpoint was trained with seed {cfg.seed}; leave --seed out")
    done = env_steps_of(ckpt)
    total = int(ckpt["config"]["total_steps"])
    if steps is None:
        steps = total if done < total else done + total  # a finished run gets the same again
    elif steps <= done:
        raise UserError(f"--steps {steps:,}: the checkpoint is already at step {done:,}; --steps is the "
                        f"total budget from the run's start, so give more than {done:,}")
    return ({"scenario": sc, "algo": algo, "steps": steps, "seed": cfg.seed, "n_envs": cfg.n_envs,
             "overrides": cfg.overrides}, ckpt_path)


@app.command()
def learn(
    name: Annotated[str | None, typer.Argument(help="a lesson (see `marl-tui learn`)")] = None,
    as_text: Annotated[bool, typer.Option("--print", help="write the lesson as plain text")] = False,
) -> None:
    """The study guide's worked examples, computed by marl-tui's own code, one step at a time."""
    from marl_tui.learn.lesson import check_name, lesson_list, lesson_text, load_lesson

    if name is None:
        typer.echo(lesson_list())
        return
    check_name(name)
    if as_text:
        typer.echo(lesson_text(load_lesson(name)), nl=False)
        return
    require_terminal(f"marl-tui learn {name}", instead=f"`marl-tui learn {name} --print`")
    from marl_tui.tui.launch import launch_lesson

    launch_lesson(load_lesson(name))


@app.command()
def doctor(
    run_dir: Annotated[Path, typer.Argument(help="a run directory (runs/...)")],
) -> None:
    """Look for the study guide's Part 7 pathologies in a run: rising loss, plateau, oscillation,
    collapsed exploration, overfitting, divergence."""
    from marl_tui.learn.doctor import diagnose_run_dir, report_text

    typer.echo(report_text(diagnose_run_dir(run_dir)))


def main() -> None:
    """Entry point: every UserError becomes one line on stderr and exit code 2."""
    try:
        # One name, also under `python -m marl_tui`: usage lines and shell completion's variable use it.
        code = app(prog_name="marl-tui", standalone_mode=False)
    except UserError as exc:  # its text may quote a file or a path: shown printable, on one line
        typer.echo(f"marl-tui: error: {printable(str(exc))}", err=True)
        sys.exit(exc.exit_code)
    except TyperException as exc:  # bad options: one line, not a usage box
        typer.echo(f"marl-tui: error: {printable(exc.format_message())} (see marl-tui --help)", err=True)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        typer.echo("marl-tui: aborted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        typer.echo("marl-tui: interrupted", err=True)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
