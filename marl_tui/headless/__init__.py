"""`marl-tui train`, `resume` and `eval`: the same trainer as the app, no terminal needed.

The trainer runs in a worker thread; the main thread shows progress (a rich progress bar
with the live KPIs on a terminal, plain lines without one, or one JSON object per interval
with --jsonl), owns the signal handlers, and at the end evaluates the greedy policy and
prints a chart of team return against the oracle and a summary table.

Signals: SIGINT (Ctrl-C), SIGTERM and SIGHUP (the SSH session is gone) stop the loop; the
trainer saves a checkpoint on its way out, summary.json is written, and the process exits
with 128 + the signal number (130, 143, 129) after one line saying how to continue. A
second Ctrl-C (or SIGTERM) exits at once: every file is written atomically, so the last
checkpoint stays whole.

    output.py    progress while training (bar, lines, JSON lines) and number formatting
    signals.py   signal names and the stop-on-signal handlers
    report.py    the team-return chart, the KPI table, summary.json / eval.json
    runs.py      run_headless, resume_headless, the drive loop and its endings
    evaluate.py  evaluate_checkpoint

torch, rich and plotext are imported only once a command runs (`marl-tui --help` stays fast).
"""

from marl_tui.headless.evaluate import evaluate_checkpoint
from marl_tui.headless.runs import resume_headless, run_headless

__all__ = ["evaluate_checkpoint", "resume_headless", "run_headless"]
