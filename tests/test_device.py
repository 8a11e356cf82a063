"""facevox.training.device: the GPU choice through NVML (a fake pynvml and a fake torch.cuda: no
GPU needed), machine-wide slot locks keyed by GPU UUID, waiting, the memory check, the CPU fallback."""
import fcntl
import os
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch

from facevox.errors import FacevoxError
from facevox.training import device, gpu_memory, gpu_slots

GIB = 2**30
REPO = Path(__file__).resolve().parents[1]


class FakeNvml(types.ModuleType):
    """pynvml over a list of GPUs ``(uuid, name, free GiB, total GiB, utilisation %)``; handles are indices."""

    class NVMLError(Exception):
        pass

    def __init__(self, gpus):
        super().__init__("pynvml")
        self.gpus = gpus

    def nvmlInit(self):
        pass

    def nvmlShutdown(self):
        pass

    def nvmlDeviceGetCount(self):
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, i):
        if not 0 <= i < len(self.gpus):
            raise self.NVMLError("invalid argument")
        return i

    def nvmlDeviceGetHandleByUUID(self, uuid):
        for i, gpu in enumerate(self.gpus):
            if gpu[0] == uuid:
                return i
        raise self.NVMLError("not found")

    def nvmlDeviceGetUUID(self, h):
        return self.gpus[h][0]

    def nvmlDeviceGetName(self, h):
        return self.gpus[h][1]

    def nvmlDeviceGetMemoryInfo(self, h):
        return types.SimpleNamespace(free=int(self.gpus[h][2] * GIB), total=int(self.gpus[h][3] * GIB))

    def nvmlDeviceGetUtilizationRates(self, h):
        return types.SimpleNamespace(gpu=self.gpus[h][4])


GPUS = [("GPU-aaaa-0000", "NVIDIA H100", 20.0, 80.0, 90),
        ("GPU-bbbb-1111", "NVIDIA H100", 70.0, 80.0, 5),
        ("GPU-cccc-2222", "NVIDIA H100", 50.0, 80.0, 0)]


@pytest.fixture
def fake_gpus(monkeypatch, tmp_path):
    """A fake pynvml + torch.cuda with GPUS; CUDA sees what CUDA_VISIBLE_DEVICES says at first use."""
    nvml = FakeNvml(GPUS)
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    calls = {"mem_get_info": [], "set_device": []}

    def seen():
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        entries = [g[0] for g in GPUS] if visible is None else visible.split(",")
        return [GPUS[int(e)][0] if e.isdigit() else e for e in entries]

    def mem_get_info(index=None):
        index = getattr(index, "index", index) or 0
        calls["mem_get_info"].append(seen()[index])
        gpu = next(g for g in GPUS if g[0] == seen()[index])
        return int(gpu[2] * GIB), int(gpu[3] * GIB)

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: len(seen()))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: "NVIDIA H100")
    monkeypatch.setattr(torch.cuda, "set_device", lambda i: calls["set_device"].append(i))
    monkeypatch.setattr(torch.cuda, "mem_get_info", mem_get_info)
    monkeypatch.setattr(gpu_slots, "POLL_S", 0.01)
    device.release_device()
    yield {"nvml": nvml, "calls": calls, "settings": {"gpu_lock_dir": str(tmp_path / "locks")},
           "locks": tmp_path / "locks"}
    device.release_device()


def hold(path: Path):
    """Another job's slot: the lock file flocked on an open file of its own (flock locks are per open file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+")
    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    handle.write("pid 4242 user other since 2024-01-01 00:00:00\n")
    handle.flush()
    return handle


def is_held(path: Path) -> bool:
    with open(path) as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
    return False


def test_most_free_gpu_chosen_through_nvml_without_touching_the_others(fake_gpus):
    dev = device.pick_device("auto", settings=fake_gpus["settings"])
    assert (dev.type, dev.index) == ("cuda", 0)
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "GPU-bbbb-1111"  # 70 GiB free of the three
    assert fake_gpus["calls"]["set_device"] == [0]
    assert fake_gpus["calls"]["mem_get_info"] == []  # no CUDA context on any GPU
    lock = fake_gpus["locks"] / "GPU-bbbb-1111.0.lock"
    assert lock.read_text().startswith(f"pid {os.getpid()} user ")
    assert sorted(p.name for p in fake_gpus["locks"].iterdir()) == ["GPU-bbbb-1111.0.lock"]
    # the memory check reads the chosen GPU only
    device.check_gpu_memory("blstm", {"batch_size": 32, "amp": True}, {"seq_len": 300, "n_visual": 136,
                                                                      "n_acoustic": 25}, dev)
    assert fake_gpus["calls"]["mem_get_info"] == ["GPU-bbbb-1111"]
    # a second call in this process (evaluate after train) keeps the GPU and its slot
    assert device.pick_device("auto", settings=fake_gpus["settings"]).index == 0
    assert is_held(lock) and len(list(fake_gpus["locks"].iterdir())) == 1


def test_visible_devices_entries_map_to_nvml_handles(fake_gpus, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,GPU-cccc")  # an index and a UUID prefix
    gpus = gpu_slots.visible_gpus(fake_gpus["nvml"])
    assert [(g.position, g.key, g.free // GIB, g.util) for g in gpus] == [(0, "GPU-aaaa-0000", 20, 90),
                                                                          (1, "GPU-cccc-2222", 50, 0)]
    device.pick_device("cuda", settings=fake_gpus["settings"])
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "GPU-cccc-2222"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "7")
    assert gpu_slots.visible_gpus(fake_gpus["nvml"]) is None


def test_a_second_job_takes_the_next_gpu(fake_gpus):
    locks = fake_gpus["locks"]
    first = hold(locks / "GPU-bbbb-1111.0.lock")  # the first job holds the most free GPU
    device.pick_device("auto", settings=fake_gpus["settings"])
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "GPU-cccc-2222"  # the next most free
    assert is_held(locks / "GPU-cccc-2222.0.lock")
    first.close()


def test_jobs_per_gpu_two_lets_two_jobs_share_one_gpu(fake_gpus, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-aaaa-0000")
    other = hold(fake_gpus["locks"] / "GPU-aaaa-0000.0.lock")
    device.pick_device("auto", settings={**fake_gpus["settings"], "jobs_per_gpu": 2})
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "GPU-aaaa-0000"
    assert is_held(fake_gpus["locks"] / "GPU-aaaa-0000.1.lock")
    other.close()


def test_all_slots_taken_waits_then_fails_naming_the_holders(fake_gpus, monkeypatch, caplog):
    caplog.set_level("INFO", logger="facevox.training.device")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    settings = {**fake_gpus["settings"], "gpu_wait_s": 0.05}
    other = hold(fake_gpus["locks"] / "GPU-bbbb-1111.0.lock")
    with pytest.raises(FacevoxError, match=(
            r"no free GPU slot after waiting 0 s \(models.gpu_wait_s: 0.05\): every slot of the 1 GPU\(s\) "
            r"this job sees is taken \(NVIDIA H100 GPU-bbbb-1111 slot 0: pid 4242 user other since .*\).*"
            r"models.jobs_per_gpu")):
        device.pick_device("auto", settings=settings)
    waiting = [r.message for r in caplog.records if "waiting up to" in r.message]
    assert len(waiting) == 1 and "GPU-bbbb-1111 slot 0: pid 4242" in waiting[0] and "0.05 s" in waiting[0]
    # a slot freed while waiting is taken
    settings["gpu_wait_s"] = 5
    monkeypatch.setattr(gpu_slots.time, "sleep", lambda seconds: other.close())
    assert device.pick_device("auto", settings=settings).index == 0
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "GPU-bbbb-1111"


def test_two_processes_take_different_slots(tmp_path):
    """A slot is an exclusive flock held by the process: a second process skips it; a killed one frees it."""
    code = ("import sys, time; from facevox.training.gpu_slots import Gpu, acquire; "
            "gpus = [Gpu(0, 'GPU-a', 'x'), Gpu(1, 'GPU-b', 'x')]; "
            f"print(acquire(gpus, __import__('pathlib').Path({str(tmp_path)!r}), 1, 0)[0].key, flush=True); "
            "time.sleep(30)")
    first = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert first.stdout.readline().strip() == "GPU-a"
        second = subprocess.run([sys.executable, "-c", code.replace("time.sleep(30)", "pass")],
                                capture_output=True, text=True, timeout=60)
        assert second.stdout.strip() == "GPU-b"
    finally:
        first.kill()
        first.wait()
    assert gpu_slots.acquire([gpu_slots.Gpu(0, "GPU-a", "x")], tmp_path, 1, 0)[0].key == "GPU-a"
    gpu_slots.release_slots()


def test_default_lock_dir_is_machine_wide_and_sticky(tmp_path, monkeypatch):
    target = tmp_path / "facevox-gpu-locks"
    monkeypatch.setattr(gpu_slots, "DEFAULT_LOCK_DIR", str(target))
    assert gpu_slots.lock_dir("") == target
    assert oct(target.stat().st_mode & 0o7777) == "0o1777"
    gpu = gpu_slots.Gpu(0, "MIG-GPU-x/1/0", "x")
    gpu_slots.acquire([gpu], target, 1, 0)
    lock = target / "MIG-GPU-x_1_0.0.lock"
    assert oct(lock.stat().st_mode & 0o777) == "0o666"
    gpu_slots.release_slots()
    (tmp_path / "file").write_text("")
    with pytest.raises(FacevoxError, match=r"models.gpu_lock_dir: .*file is not a folder this job can write"):
        gpu_slots.lock_dir(str(tmp_path / "file"))


def test_without_nvml_falls_back_to_torch_with_a_log_line(fake_gpus, monkeypatch, caplog):
    caplog.set_level("INFO", logger="facevox.training.device")
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,2")
    dev = device.pick_device("auto", settings=fake_gpus["settings"])
    assert "nvidia-ml-py (pynvml) is not installed" in caplog.text
    assert dev.index == 1 and fake_gpus["calls"]["set_device"] == [1]  # GPU-cccc: 50 GiB free > 20
    assert fake_gpus["calls"]["mem_get_info"] == ["GPU-aaaa-0000", "GPU-cccc-2222"]
    assert [p.name for p in fake_gpus["locks"].iterdir()] == ["gpu2.0.lock"]


def test_too_little_free_memory_names_model_need_and_gpu(fake_gpus, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-aaaa-0000")  # 20 GiB free
    dev = device.pick_device("auto", settings=fake_gpus["settings"])
    clip = {"clip_len": 64, "size": 224}
    need = device.check_gpu_memory("sta_drn", {"batch_size": 5, "amp": True}, clip, dev)
    assert 12 * GIB < need < 14 * GIB  # 1.25 x (10.26 GiB measured) + 0.25
    with pytest.raises(FacevoxError, match=r"^sta_drn: needs about 25\.3 GiB of GPU memory \(batch size 10, .*"
                                           r"but cuda:0 = NVIDIA H100 GPU-aaaa-0000 has 20\.0 of 80\.0 GiB free; "
                                           r"lower its batch size \(models.overrides.sta_drn.batch_size\)"):
        device.check_gpu_memory("sta_drn", {"batch_size": 10, "amp": True}, clip, dev)
    assert device.check_gpu_memory("sta_drn", {"batch_size": 10}, clip, torch.device("cpu")) is None


def test_estimate_scales_with_batch_input_and_amp():
    seq = {"seq_len": 300, "n_visual": 136, "n_acoustic": 25}
    base = gpu_memory.estimate_gpu_memory("stst", "sequence", 64, seq)
    assert base == int(1.25 * 1.86 * GIB + GIB // 4)  # the calibration point: 1.25 x peak + workspace
    static = 6_276_978 * 16
    act = 1.86 * GIB - static
    assert gpu_memory.estimate_gpu_memory("stst", "sequence", 128, seq) == int(1.25 * (static + 2 * act) + GIB // 4)
    assert gpu_memory.estimate_gpu_memory("stst", "sequence", 64, {**seq, "seq_len": 150}) == int(
        1.25 * (static + act / 2) + GIB // 4)
    assert gpu_memory.estimate_gpu_memory("stst", "sequence", 64, seq, amp=False) == int(
        1.25 * (static + 2 * act) + GIB // 4)
    # a model missing from the table: its family's largest activation per item, its own parameters
    unknown = gpu_memory.estimate_gpu_memory("new_model", "face", 32, {"size": 112}, parameters=1_000_000)
    dlga_act = 4.48 * GIB - 196_332_442 * 16
    assert unknown == int(1.25 * (16_000_000 + dlga_act / 4) + GIB // 4)
    assert gpu_memory.estimate_gpu_memory("x", "tabular", 32, {}) is None


def test_calibration_is_the_benchmark_table():
    table = (REPO / "benchmarks/results/models_gpu_h100.md").read_text()
    rows = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 7 and re.fullmatch(r"[\d,]+", cells[2]):
            rows[cells[0]] = (cells[1], int(cells[2].replace(",", "")), int(cells[3].split(" x ")[0]),
                              float(cells[6]))
    assert rows == gpu_memory.CALIBRATION


def test_slurm_partition_follows_the_gpu_resource():
    env = {"FACEVOX_SLURM_PARTITION": "cpu", "FACEVOX_SLURM_GPU_PARTITION": "gpu"}
    assert device.job_partition(0, env) == "cpu"  # scikit-learn baselines, models.device: cpu
    assert device.job_partition(1, env) == "gpu"
    assert device.job_partition(1, {"FACEVOX_SLURM_PARTITION": "all"}) == "all"
    assert device.job_partition(1, {}) == ""


def test_cpu_when_asked_or_without_cuda(monkeypatch, caplog):
    caplog.set_level("INFO", logger="facevox.training.device")
    monkeypatch.setitem(sys.modules, "pynvml", None)
    assert device.pick_device("cpu").type == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert device.pick_device("auto").type == "cpu"
    assert "no CUDA GPU visible" in caplog.text


def test_cuda_without_a_visible_gpu_is_an_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(FacevoxError, match=r"models.device is cuda but this job sees no CUDA GPU "
                                           r"\(CUDA_VISIBLE_DEVICES=''.*set models.device: auto"):
        device.pick_device("cuda")
