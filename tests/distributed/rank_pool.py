"""Processes that stay up across tests as one torch.distributed group (gloo on 127.0.0.1 only), so
the tests pay for spawning and importing once per world size, not once per test.

`RankPool.run(job, *args)` runs `job(rank, world_size, *args)` on every rank. Any rank raising fails
the call at once with that rank's traceback, and the pool is torn down (the other ranks may be stuck
in a collective with the failed one, so they are killed, not waited for); a call that exceeds its
timeout does the same. The fixture then builds a fresh pool for the next test. Every process is
joined or killed on close. Jobs are module-level functions, so the spawned processes can import them.
"""
import datetime
import os
import queue
import socket
import time
import traceback

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

LOOPBACK = "127.0.0.1"
INIT_TIMEOUT_S = 60
COLLECTIVE_TIMEOUT_S = 60


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def _serve(rank: int, world_size: int, port: int, jobs, results) -> None:
    os.environ["GLOO_SOCKET_IFNAME"] = "lo"  # gloo's own traffic stays on the loopback device too
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://{LOOPBACK}:{port}", rank=rank, world_size=world_size,
                            timeout=datetime.timedelta(seconds=COLLECTIVE_TIMEOUT_S))
    results.put(("ready", rank, None))
    try:
        while (job := jobs[rank].get()) is not None:
            function, args = job
            try:
                function(rank, world_size, *args)
                results.put(("ok", rank, None))
            except BaseException:
                results.put(("error", rank, traceback.format_exc()))
    finally:
        dist.destroy_process_group()


class RankFailed(AssertionError):
    pass


class RankPool:
    def __init__(self, world_size: int):
        self.world_size = world_size
        context = mp.get_context("spawn")
        self._jobs = [context.Queue() for _ in range(world_size)]
        self._results = context.Queue()
        self._processes = mp.start_processes(
            _serve, args=(world_size, free_loopback_port(), self._jobs, self._results), nprocs=world_size,
            join=False, start_method="spawn")
        self.closed = False
        self._collect("ready", INIT_TIMEOUT_S + 60)

    def run(self, job, *args, timeout_s: float = 120) -> None:
        for jobs in self._jobs:
            jobs.put((job, args))
        self._collect("ok", timeout_s)

    def _collect(self, expected: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        done = set()
        while len(done) < self.world_size:
            if time.monotonic() > deadline:
                self.close(kill=True)
                raise TimeoutError(f"ranks {sorted(set(range(self.world_size)) - done)} did not finish within "
                                   f"{timeout_s} s (the pool was killed)")
            try:
                status, rank, trace = self._results.get(timeout=0.2)
            except queue.Empty:
                self._fail_if_a_process_died()
                continue
            if status == "error":
                self.close(kill=True)
                raise RankFailed(f"rank {rank} of {self.world_size} raised:\n{trace}")
            done.add(rank)

    def _fail_if_a_process_died(self) -> None:
        dead = [rank for rank, process in enumerate(self._processes.processes) if not process.is_alive()]
        if dead:
            codes = {rank: self._processes.processes[rank].exitcode for rank in dead}
            self.close(kill=True)
            raise RankFailed(f"ranks {dead} exited unexpectedly (exit codes {codes})")

    def close(self, kill: bool = False) -> None:
        if self.closed:
            return
        self.closed = True
        if not kill:
            for jobs in self._jobs:
                jobs.put(None)
        for process in self._processes.processes:
            process.join(timeout=0 if kill else 30)
            if process.is_alive():
                process.kill()
                process.join(timeout=30)
