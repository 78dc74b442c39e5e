"""Process-group setup and the few collectives the loop needs (rank 0 decides, all agree)."""

from __future__ import annotations

import datetime
import os
import socket
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Dist:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(device_choice: str) -> Dist:
    """Join the process group torchrun set up; a plain process becomes a world of one."""
    if "RANK" not in os.environ:
        os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1")
        os.environ["MASTER_PORT"] = str(_free_port())
    local_rank = int(os.environ["LOCAL_RANK"])
    use_cuda = device_choice == "cuda" or (device_choice == "auto" and torch.cuda.is_available())
    if use_cuda:
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    dist.init_process_group(
        backend="nccl" if use_cuda else "gloo", timeout=datetime.timedelta(minutes=60)
    )
    return Dist(dist.get_rank(), dist.get_world_size(), local_rank, device)


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def sum_all(values: list[float], device: torch.device) -> list[float]:
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def broadcast_text(text: str | None, device: torch.device) -> str:
    """Rank 0's string on every rank (used to share an error so all ranks stop with it)."""
    box = [text]
    dist.broadcast_object_list(box, src=0, device=device)
    return box[0] or ""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
