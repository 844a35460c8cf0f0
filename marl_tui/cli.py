"""The `marl-tui` command. Thin: parses options, hands work to the modules that do it.

torch and textual are imported inside the commands that need them, so `--help`,
`--version` and `scenarios` answer at once.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from typer.exceptions import TyperException

from marl_tui import __version__
from marl_tui.errors import UserError

app = typer.Typer(
    name="marl-tui",
    help="Watch multi-agent reinforcement learning think: MADDPG, MAPPO and QMIX on pricing, "
    "restocking and fulfillment, live in your terminal. With no command: open the app.",
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

ScenarioArg = Annotated[
    str, typer.Argument(help="a bundled scenario name (see `marl-tui scenarios`) or a .toml path")
]
AlgoOpt = Annotated[str, typer.Option("--algo", "-a", help="maddpg | mappo | qmix | random | oracle")]
StepsOpt = Annotated[
    int | None, typer.Option(help="environment steps over all parallel copies [default: per algorithm]")
]
SeedOpt = Annotated[int | None, typer.Option(help="random seed [default: the scenario's]")]
EnvsOpt = Annotated[int | None, typer.Option("--envs", help="parallel copies [default: the scenario's]")]
DeviceOpt = Annotated[str, typer.Option(help="auto | cpu | cuda")]
LrOpt = Annotated[float | None, typer.Option("--lr", help="learning rate [default: per algorithm]")]
GammaOpt = Annotated[float | None, typer.Option("--gamma", help="discount factor γ in [0, 1)")]
ExploreOpt = Annotated[
    float | None,
    typer.Option("--explore", help="exploration: MADDPG noise σ, MAPPO entropy bonus, QMIX final ε"),
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
    from marl_tui.catalogue import scenario_info, scenario_info_text

    data = scenario_info(scenario)
    typer.echo(json.dumps(data, indent=2) if as_json else scenario_info_text(data))


def _hp_overrides(lr: float | None, gamma: float | None, explore: float | None,
                  algo: str) -> dict[str, float]:
    from marl_tui.algos.registry import algorithm_class

    if gamma is not None and not 0 <= gamma < 1:
        raise UserError(f"--gamma {gamma}: the discount factor must be in [0, 1)")
    if lr is not None and not 0 < lr < 1:
        raise UserError(f"--lr {lr}: the learning rate must be in (0, 1), e.g. 3e-4")
    out: dict[str, float] = {}
    if lr is not None:
        out["lr"] = lr
    if gamma is not None:
        out["gamma"] = gamma
    if explore is not None:
        field = algorithm_class(algo).exploration_field
        if field is None:
            raise UserError(f"--explore: {algo} has no exploration setting; leave it out")
        out[field] = explore
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
    jsonl: Annotated[bool, typer.Option("--jsonl", help="one JSON object per progress line")] = False,
) -> None:
    """Train headless (no terminal needed): progress lines, a run directory, a final evaluation."""
    from marl_tui.config import load_scenario
    from marl_tui.headless import run_headless

    sc = load_scenario(scenario)
    if envs is not None and envs <= 0:
        raise UserError(f"--envs {envs}: the number of parallel copies must be positive")
    if steps is not None and steps <= 0:
        raise UserError(f"--steps {steps}: the number of steps must be positive")
    overrides = _hp_overrides(lr, gamma, explore, algo)
    code = run_headless(sc, algo=algo, steps=steps, seed=seed, n_envs=envs, device=device,
                        out=out, overrides=overrides, jsonl=jsonl)
    raise typer.Exit(code)


@app.command()
def run(
    scenario: ScenarioArg,
    algo: AlgoOpt = "mappo",
    steps: StepsOpt = None,
    seed: SeedOpt = None,
    envs: EnvsOpt = None,
    device: DeviceOpt = "cpu",
    lr: LrOpt = None,
    gamma: GammaOpt = None,
    explore: ExploreOpt = None,
) -> None:
    """Open the app straight on a scenario and algorithm (skips the picker)."""
    from marl_tui.config import load_scenario
    from marl_tui.tui.launch import launch_app

    sc = load_scenario(scenario)
    overrides = _hp_overrides(lr, gamma, explore, algo)
    launch_app(scenario=sc, algo=algo, steps=steps, seed=seed, n_envs=envs, device=device,
               overrides=overrides)


def main() -> None:
    """Entry point: every UserError becomes one line on stderr and exit code 2."""
    try:
        code = app(standalone_mode=False)
    except UserError as exc:
        typer.echo(f"marl-tui: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except TyperException as exc:  # bad options: one line, not a usage box
        typer.echo(f"marl-tui: error: {exc.format_message()} (see marl-tui --help)", err=True)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        typer.echo("marl-tui: aborted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
