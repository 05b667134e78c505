"""Running the cases: W processes on one machine (gloo on 127.0.0.1 for CPUs, NCCL for GPUs), each
case timed forward and backward with the bytes every rank sends counted; rank 0 checks the gathered
output and gradients against single-device `kernels.attention` on the whole sequence."""
import datetime
import os
import socket
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import kernels
from kernels import distributed as kd
from kernels.distributed.communication import count_sent_bytes
from benchmarks.context_parallel.cases import Case

LOOPBACK = "127.0.0.1"
TIMEOUT_S = 600


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def _inputs(case: Case, dtype, device, seed: int):
    generator = torch.Generator().manual_seed(seed)
    shape_q = (case.batch, case.heads, case.seq_len, case.head_dim)
    shape_kv = (case.batch, case.kv_heads, case.seq_len, case.head_dim)
    q, k, v, dout = (torch.randn(shape, generator=generator).to(device, dtype)
                     for shape in (shape_q, shape_kv, shape_kv, shape_q))
    keep = None
    if case.padded:
        keep = torch.ones(case.batch, case.seq_len, dtype=torch.bool, device=device)
        keep[:, : case.seq_len // 8] = False  # left padding
    return q, k, v, dout, keep


def _synchronize(device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def _single_device(case: Case, q, k, v, dout, keep):
    inputs = [t.detach().clone().requires_grad_() for t in (q, k, v)]
    if case.is_causal and keep is not None:
        out = kernels.causal_attention_with_key_padding(*inputs, keep, enable_gqa=True)
    else:
        mask = None if keep is None else keep[:, None, None, :]
        out = kernels.attention(*inputs, attn_mask=mask, is_causal=case.is_causal, enable_gqa=True)
    out.backward(dout)
    return [out.detach(), *(t.grad for t in inputs)]


def _rank_main(rank: int, world_size: int, port: int, cases: list[Case], dtype, device_type: str, results) -> None:
    os.environ["GLOO_SOCKET_IFNAME"] = "lo"
    device = torch.device(device_type, rank) if device_type == "cuda" else torch.device("cpu")
    if device_type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device_type == "cuda" else "gloo", init_method=f"tcp://{LOOPBACK}:{port}",
                            rank=rank, world_size=world_size, timeout=datetime.timedelta(seconds=TIMEOUT_S))
    try:
        for index, case in enumerate(cases):
            q, k, v, dout, keep = _inputs(case, dtype, device, seed=index)
            shard = lambda t, dim=2: kd.shard_sequence(t, dim=dim, layout=case.layout)  # noqa: E731
            local = [shard(t).detach().requires_grad_() for t in (q, k, v)]
            started = _synchronize(device)
            with count_sent_bytes() as forward_bytes:
                out = kd.context_parallel_attention(*local, method=case.method, layout=case.layout,
                                                    is_causal=case.is_causal, enable_gqa=True,
                                                    key_padding=None if keep is None else shard(keep, 1))
            forward_done = _synchronize(device)
            with count_sent_bytes() as backward_bytes:
                out.backward(shard(dout))
            backward_done = _synchronize(device)
            row = dict(index=index, rank=rank, forward_bytes=forward_bytes.total, backward_bytes=backward_bytes.total,
                       forward_ms=1e3 * (forward_done - started), backward_ms=1e3 * (backward_done - forward_done))
            results_local = (out.detach(), *(t.grad for t in local))
            gathered = [kd.unshard_sequence(t, dim=2, layout=case.layout) for t in results_local]
            if rank == 0:
                started = _synchronize(device)
                expected = _single_device(case, q, k, v, dout, keep)
                row["single_device_ms"] = 1e3 * (_synchronize(device) - started)
                row["max_abs_error"] = {name: (a.float() - e.float()).abs().max().item()
                                        for name, a, e in zip(("out", "dq", "dk", "dv"), gathered, expected)}
            results.put(row)
    finally:
        dist.destroy_process_group()


def run_cases(cases: list[Case], world_size: int, dtype: torch.dtype, device: torch.device) -> list[dict]:
    """One row per (case, rank); raises with the failing rank's traceback if any rank fails."""
    context = mp.get_context("spawn")
    results = context.Queue()
    processes = mp.start_processes(_rank_main, args=(world_size, _free_port(), cases, dtype, device.type, results),
                                   nprocs=world_size, join=False, start_method="spawn")
    rows = []
    deadline = time.monotonic() + TIMEOUT_S
    while not processes.join(timeout=1):  # raises at once when a rank fails, killing the others
        while not results.empty():
            rows.append(results.get())
        if time.monotonic() > deadline:
            for process in processes.processes:
                process.kill()
            raise TimeoutError(f"the context-parallel benchmark did not finish within {TIMEOUT_S} s")
    while not results.empty():
        rows.append(results.get())
    return rows
