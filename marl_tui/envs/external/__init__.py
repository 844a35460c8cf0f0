"""Environments marl-tui did not write, as batched envs: PettingZoo ParallelEnvs (B copies
stepped in turn) and VMAS scenarios (natively batched torch). Each adapter imports its
package only when built; a missing package is a one-line error naming the extra."""
