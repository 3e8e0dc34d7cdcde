"""How often a gloo process aborts at exit, with and without destroying its process group first (docs/distributed.md).

    python benchmarks/gloo_exit_abort.py [--trials 40] [--processes 4]

Each trial spawns ``--processes`` processes (``torch.multiprocessing.spawn``, as ``ddp_spawn`` does) that form a
gloo group, all-gather, all-reduce, end on three ``broadcast_object_list`` calls (Lightning's last collective in a
spawned process) and return. Left alone, the group ends with the interpreter and a process can abort
("terminate called without an active exception", SIGABRT); in the other kind of trial cnnpl's
:func:`cnnpl.distributed.destroy_process_group_at_exit` ends it before. Trials alternate the two, so both meet the
same machine load. Not a timing: counts of aborted trials.
"""

from __future__ import annotations

import argparse
import os

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from lightning.fabric.plugins.environments.lightning import find_free_network_port

from cnnpl.distributed import destroy_process_group_at_exit


def _process(rank: int, processes: int, port: int, destroy: bool) -> None:
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    dist.init_process_group("gloo", rank=rank, world_size=processes)
    if destroy:
        destroy_process_group_at_exit()
    value = torch.tensor([float(rank)])
    dist.all_gather([torch.empty(1) for _ in range(processes)], value)
    dist.all_reduce(value)
    for _ in range(3):
        dist.broadcast_object_list([{"path": "x" * 100}] if rank == 0 else [None], src=0)


def trial(processes: int, destroy: bool) -> bool:
    """Whether every process of one trial ended well (a trial whose group could not form, another process having
    taken the port, is tried again)."""
    for _ in range(3):
        try:
            mp.spawn(_process, args=(processes, find_free_network_port(), destroy), nprocs=processes, join=True)
        except mp.ProcessExitedException:  # a signal or an exit status: the abort this counts
            return False
        except mp.ProcessRaisedException as err:
            if "address already in use" not in str(err).lower():
                raise
            continue
        return True
    raise RuntimeError("no free port in three tries")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=40, help="trials of each kind (default 40)")
    parser.add_argument("--processes", type=int, default=4, help="processes per trial (default 4)")
    args = parser.parse_args()
    aborted = {False: 0, True: 0}
    for _ in range(args.trials):
        for destroy in (False, True):
            aborted[destroy] += not trial(args.processes, destroy)
    print(f"{args.processes} processes, {args.trials} trials each")
    print(f"group left to Python's shutdown: {aborted[False]} aborted")
    print(f"group destroyed at exit:         {aborted[True]} aborted")


if __name__ == "__main__":
    main()
