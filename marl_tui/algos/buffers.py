"""A replay buffer of batched transitions for the off-policy learners (MADDPG, QMIX).

Fixed capacity, tensors preallocated on the learner's device, a seeded generator
for sampling so runs repeat exactly and resume exactly.
"""

from __future__ import annotations

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
