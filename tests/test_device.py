"""facevox.training.device: GPU slots (tested with lock files; no GPU needed) and the CPU fallback."""
import os
import subprocess
import sys

import pytest
import torch

from facevox.errors import FacevoxError
from facevox.training import device


def test_cpu_when_asked_or_without_cuda(monkeypatch, caplog):
    caplog.set_level("INFO", logger="facevox.training.device")
    assert device.pick_device("cpu").type == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert device.pick_device("auto").type == "cpu"
    assert "no CUDA GPU visible" in caplog.text


def test_cuda_without_a_visible_gpu_is_an_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(FacevoxError, match=r"models.device is cuda but this job sees no CUDA GPU "
                                           r"\(CUDA_VISIBLE_DEVICES=''.*set models.device: auto"):
        device.pick_device("cuda")


def test_two_jobs_take_different_slots(tmp_path):
    """A slot is an exclusive flock held by the process: a second process skips it."""
    code = ("import sys, time; from facevox.training.device import take_slot; "
            f"print(take_slot([0, 1], {str(tmp_path)!r}), flush=True); time.sleep(30)")
    first = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert first.stdout.readline().strip() == "0"
        second = subprocess.run([sys.executable, "-c", code.replace("time.sleep(30)", "pass")],
                                capture_output=True, text=True, timeout=60)
        assert second.stdout.strip() == "1"
        third = subprocess.run([sys.executable, "-c", code.replace("[0, 1]", "[0]").replace("time.sleep(30)", "pass")],
                               capture_output=True, text=True, timeout=60)
        assert third.stdout.strip() == "None"  # every slot taken
    finally:
        first.kill()
        first.wait()
    # the killed job's slot is free at once
    assert device.take_slot([0], tmp_path) == 0
    device.release_slots()


def test_slot_names_follow_cuda_visible_devices(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    assert device.take_slot([1], tmp_path) == 1
    assert (tmp_path / "gpu5.lock").read_text().strip() == str(os.getpid())
    device.release_slots()
