"""marl-tui: watch multi-agent reinforcement learning think, in a terminal."""

__version__ = "0.1.0"
