"""A replay buffer of batched transitions for the off-policy learners (MADDPG, QMIX).

Fixed capacity, tensors preallocated on the learner's device, a seeded generator
for sampling so runs repeat exactly and resume exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


class ReplayBuffer:
    def __init__(
        self,
        capacity: int,
        fields: dict[str, tuple[tuple[int, ...], torch.dtype]],
        device: torch.device,
        seed: int,
    ) -> None:
        self.capacity = capacity
        self.device = device
        self.data = {
            name: torch.zeros((capacity, *shape), dtype=dtype, device=device)
            for name, (shape, dtype) in fields.items()
        }
        self.pos = 0
        self.size = 0
        self.generator = torch.Generator(device="cpu").manual_seed(seed)

    def __len__(self) -> int:
        return self.size

    def add(self, batch: dict[str, torch.Tensor]) -> None:
        """Add B transitions at once (every tensor has leading dim B)."""
        n = next(iter(batch.values())).shape[0]
        idx = (torch.arange(n, device=self.device) + self.pos) % self.capacity
        for name, value in batch.items():
            self.data[name][idx] = value.to(self.data[name].dtype)
        self.pos = (self.pos + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def sample(self, n: int) -> dict[str, torch.Tensor]:
        idx = torch.randint(0, self.size, (n,), generator=self.generator).to(self.device)
        return {name: value[idx] for name, value in self.data.items()}

    def state_dict(self) -> dict[str, object]:
        return {
            "data": {k: v[: self.size].clone() for k, v in self.data.items()},
            "pos": self.pos,
            "size": self.size,
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, object]) -> None:
        self.pos, self.size = int(state["pos"]), int(state["size"])
        for k, v in state["data"].items():
            self.data[k][: self.size] = v.to(self.device)
        self.generator.set_state(state["generator"])


class SeedReplay:
    """S seeds' ReplayBuffers as one, filled in lockstep: data [S, capacity, ...]. Rows are
    seeds-major ([S*B, ...]: seed s's B rows, then seed s + 1's), in and out; seed s samples
    with its ReplayBuffer's own generator (the object, not a copy) exactly the draws that
    buffer would make."""

    def __init__(self, buffers: Sequence[ReplayBuffer]) -> None:
        first = buffers[0]
        if any((b.capacity, b.pos, b.size) != (first.capacity, first.pos, first.size) for b in buffers):
            raise ValueError("SeedReplay: the buffers must have one capacity and be filled in lockstep")
        self.capacity, self.device = first.capacity, first.device
        self.pos, self.size = first.pos, first.size
        self.data = {name: torch.stack([b.data[name] for b in buffers]) for name in first.data}
        self.generators = [b.generator for b in buffers]

    def __len__(self) -> int:
        return self.size

    def add(self, batch: dict[str, torch.Tensor]) -> None:
        """Add B transitions per seed (every tensor has leading dim S*B, seeds-major)."""
        n_seeds = len(self.generators)
        n = next(iter(batch.values())).shape[0] // n_seeds
        idx = (torch.arange(n, device=self.device) + self.pos) % self.capacity
        for name, value in batch.items():
            self.data[name][:, idx] = value.unflatten(0, (n_seeds, n)).to(self.data[name].dtype)
        self.pos = (self.pos + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def sample(self, n: int) -> dict[str, torch.Tensor]:
        """n transitions per seed, [S*n, ...] seeds-major."""
        idx = torch.stack([torch.randint(0, self.size, (n,), generator=g) for g in self.generators])
        seeds = torch.arange(len(self.generators))[:, None]
        rows = (seeds * self.capacity + idx).flatten().to(self.device)
        return {name: value.flatten(0, 1)[rows] for name, value in self.data.items()}

    def write_back(self, buffers: Sequence[ReplayBuffer]) -> None:
        """Seed s's contents into buffers[s] (its generator is already the one sampled with)."""
        for s, b in enumerate(buffers):
            for name, value in self.data.items():
                b.data[name].copy_(value[s])
            b.pos, b.size = self.pos, self.size
