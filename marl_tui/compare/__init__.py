"""`marl-tui compare`: algorithms and seeds trained side by side and read as one comparison.

A comparison is a set of run directories: an engine trains them (or they exist already) and
views read them, live or after.

    jobs.py        the (algorithm, seed) jobs, their states, --algos
    jobrun.py      what one job runs: `marl-tui train` / `resume`, one torch thread, a log
    engines.py     the local engine (a queue, one process per core); ray_engine.py: Ray tasks
    runs.py        one run directory read as it grows (metrics.csv, stream, summary.json)
    board.py       the runs of one comparison, polled, with their states
    targets.py     the targets and reference lines, declared once
    stats.py       IQM, bootstrap CIs, probability of improvement, seed bands (rliable's definitions)
    summary.py     a comparison at one moment (typed), from the runs
    results.py     marl-eval JSON and CSVs
    inputs.py      checks on what the command was given
    headless.py    progress lines and the final table
    command.py     the command itself
"""
