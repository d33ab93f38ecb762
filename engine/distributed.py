"""One engine job as one torch.distributed run over several devices.

With more than one process configured (`TUNEUP_ENGINE_NPROC`, default: one per CUDA GPU), the
trainer process hands each job to `torchrun --standalone --nproc-per-node N -m
engine.distributed JOB_ID ENGINE_PID`. Every rank loads the model and trains its share of each
global batch under DDP (NCCL on GPUs, gloo on CPUs); rank 0 alone writes events, checkpoints,
the job's state and the final model. The job's status and cancel work as for one process.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from datetime import timedelta
from typing import Any

from engine.settings import EngineSettings
from engine.store import Store

log = logging.getLogger("tuneup.engine.distributed")
FINISH_TIMEOUT = timedelta(hours=6)
RANK0_GRACE_SECONDS = 30
WRITES = {
    "add_event",
    "update_job",
    "set_internal_key",
    "set_internal",
    "add_checkpoint",
    "delete_checkpoint",
    "add_file",
    "add_model",
    "delete_file",
    "delete_model",
}


class ReadOnlyStore:
    """The store as ranks other than 0 see it: they read the job, and write nothing."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        if name in WRITES:
            return lambda *args, **kwargs: False
        return getattr(self._store, name)


def processes(settings: EngineSettings) -> int:
    """How many ranks one job runs on."""
    if settings.nproc:
        return settings.nproc
    import torch

    cuda = settings.device != "cpu" and torch.cuda.is_available()
    return torch.cuda.device_count() if cuda else 1


def launch(settings: EngineSettings, job_id: str, engine_pid: int) -> int:
    """Run the job under torchrun and wait for it; the ranks watch the engine themselves."""
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={processes(settings)}",
        "-m",
        "engine.distributed",
        job_id,
        str(engine_pid),
    ]
    return subprocess.run(command, env=os.environ.copy(), check=False).returncode


def _leave_failed(run: Any, store: Store, rank: int) -> None:
    """The other ranks may wait inside a collective for this one: leaving with an error makes
    torchrun stop them (destroying the group could wait on them). A rank other than 0 first
    gives rank 0 time to record the failure (usually the same one), and records its own
    reason if rank 0 did not, so the job never ends with only an exit code."""
    if rank != 0:
        deadline = time.monotonic() + RANK0_GRACE_SECONDS
        while store.status_of(run.job_id) == "running" and time.monotonic() < deadline:
            time.sleep(0.2)
        if store.status_of(run.job_id) == "running":
            run.store = store
            run.fail(*run.failure)
    log.error("rank %d: the job failed here; stopping every rank", rank)
    sys.exit(1)


def run_rank(job_id: str, engine_pid: int) -> None:
    import torch

    from engine.worker import JobRun

    rank, local = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
    settings = EngineSettings()
    cuda = settings.device != "cpu" and torch.cuda.is_available()
    torch.distributed.init_process_group("nccl" if cuda else "gloo")
    # After training, rank 0 alone scores and saves (minutes for a big model): the other ranks
    # wait for it on a CPU group with a long timeout, so that no rank leaves while another
    # still works: a rank that is done can no longer take the job down on its way out. (CI
    # once saw rank 1 abort in C++, and torchrun then stop rank 0 and fail the job.)
    finish = torch.distributed.new_group(backend="gloo", timeout=FINISH_TIMEOUT)
    if cuda:
        torch.cuda.set_device(local)
        settings.device = f"cuda:{local}"
    torch.set_num_threads(settings.torch_threads or 1)
    store = Store(settings.db_path)
    job = store.get_job(job_id)
    if job is not None:
        quiet: Any = store if rank == 0 else ReadOnlyStore(store)
        run = JobRun(quiet, settings, job, engine_pid, rank=rank)
        run.run()
        if run.failure:
            _leave_failed(run, store, rank)
    torch.distributed.barrier(group=finish)
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s rank %(message)s")
    run_rank(sys.argv[1], int(sys.argv[2]))
