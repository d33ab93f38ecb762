"""The trainer process never outlives its engine, even when the engine is stopped while starting."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from tests.conftest import ROOT, Progress, free_port


def test_trainer_exits_when_the_engine_is_stopped_during_start(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "TUNEUP_ENGINE_DATA_DIR": str(tmp_path / "data"),
        "TUNEUP_ENGINE_PORT": str(free_port()),
    }
    engine = subprocess.Popen(
        [sys.executable, "-m", "engine"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    trainer = None
    progress = Progress(stall=120)
    while trainer is None and not progress.stalled():
        children = psutil.Process(engine.pid).children()
        trainer = next((c for c in children if "multiprocessing" in " ".join(c.cmdline())), None)
        progress.saw(len(children))
        time.sleep(0.05)
    assert trainer is not None, "the engine never started its trainer"
    engine.send_signal(signal.SIGKILL)  # stopped before the trainer even imported torch
    engine.wait(timeout=30)
    gone = Progress(stall=120)
    while trainer.is_running() and trainer.status() != psutil.STATUS_ZOMBIE:
        assert not gone.stalled(), "the trainer outlived its engine"
        time.sleep(0.1)
