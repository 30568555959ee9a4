"""Data-parallel training across processes (``torch.distributed``), as ``torchrun`` starts them.

``torchrun --nproc-per-node N ...`` (or ``bbans train --nproc N``) starts N copies of the training program with
``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK`` in their environment; ``Group.from_env()`` joins them into one process
group — gloo on CPUs, nccl on GPUs — and is a no-op group of one otherwise, so single-process training is exactly
what it was. Every process computes the loss on its own shard of each global batch inside
``DistributedDataParallel`` (gradients are averaged across processes during the backward pass), so the global batch
and the trained weights do not depend on how many processes share it; rank 0 alone logs and writes files.
Multi-node runs use torchrun's standard rendezvous flags (docs/cluster.md).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Group:
    """This process's place in the training run: ``rank`` of ``world`` processes (``local_rank`` on its node)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls, device_type: str = "cpu") -> "Group":
        """Join the process group torchrun's environment describes (initializing it once), or a group of one."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
        return cls(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))

    @property
    def main(self) -> bool:
        """True on the process that logs and writes files (rank 0)."""
        return self.rank == 0

    def shard(self, batch_size: int) -> slice:
        """This process's slice of a global batch of ``batch_size`` items (equal shards; ValueError otherwise)."""
        if batch_size % self.world:
            raise ValueError(f"the batch of {batch_size} items does not split evenly over {self.world} processes; "
                             "give a --batch-size divisible by the number of processes")
        n = batch_size // self.world
        return slice(self.rank * n, (self.rank + 1) * n)

    def wrap(self, module: torch.nn.Module) -> torch.nn.Module:
        """``module`` in ``DistributedDataParallel`` when there are several processes, else as it is."""
        if self.world == 1:
            return module
        from torch.nn.parallel import DistributedDataParallel

        device = next(module.parameters()).device
        return DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None)

    def sum(self, values: list[float], device) -> list[float]:
        """Element-wise sums of ``values`` over all processes (the values themselves with one process)."""
        if self.world == 1:
            return list(values)
        import torch.distributed as dist

        t = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(t)
        return t.tolist()

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()


class LossModule(torch.nn.Module):
    """``loss_fn(model, x, beta)`` as a module's ``forward``, so ``DistributedDataParallel`` sees (and averages the
    gradients of) the whole loss computation, whichever of the model's methods it calls."""

    def __init__(self, model: torch.nn.Module, loss_fn):
        super().__init__()
        self.model, self.loss_fn = model, loss_fn

    def forward(self, x: torch.Tensor, beta: float):
        return self.loss_fn(self.model, x, beta)
