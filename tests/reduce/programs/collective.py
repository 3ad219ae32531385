"""A gloo collective that fails only with 3 or more ranks (the distributed reduce test)."""

import torch
import torch.distributed as dist

dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
t = torch.ones(4) * rank
dist.all_reduce(t)
if world >= 3:
    raise RuntimeError(f"all_reduce produced a bad sum with {world} ranks")
print(f"rank {rank}: ok {t.tolist()}")
dist.destroy_process_group()
