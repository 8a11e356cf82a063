"""facevox.models: the registry, and what every sequence model must do (shapes, overfitting).

Architecture-specific checks live in tests/test_models_<name>.py.
"""
import os

import numpy as np
import pytest
import torch

from facevox.errors import FacevoxError
from facevox.models import TRAINING_KEYS, check_overrides, create_model, get_spec, list_models, split_overrides
from facevox.models.families import FAMILIES, catalogue, check_run, display_name, family_of, job_settings

SEQUENCE = list_models("sequence")
def test_catalogue_read_without_import_matches_the_registered_models():
    registered = {name: (get_spec(name).family, get_spec(name).display) for name in list_models()}
    assert registered == {name: (e.family, e.display) for name, e in catalogue().items()}
    assert len(registered) == 19 and display_name("depression_detector") == "Depression Detector"


def test_catalogue_and_family_table_need_no_torch():
    import subprocess
    import sys

    code = ("import sys; from facevox.models.families import catalogue, family; "
            "from facevox.report.tables import table_tasks; "
            "assert family('sta_drn').data == 'faces' and len(catalogue()) == 19; "
            "assert table_tasks(['stst', 'shallow_a']) == ['classification', 'continuous']; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_family_names_a_task_a_table_and_its_data():
    from facevox.training.tasks import TASKS

    for fam in FAMILIES.values():
        assert fam.task in TASKS and fam.table in ("classification", "regression", "continuous")
        assert fam.data in ("shards", "faces", "fau_windows")
    assert {family_of(m) for m in list_models()} == set(FAMILIES)


def test_unknown_model_in_run_is_named_with_a_suggestion():
    check_run(["stst", "lr"])
    with pytest.raises(FacevoxError, match="unknown model 'stts' \\(did you mean 'stst'\\?\\)"):
        check_run(["stts"])


def test_job_settings_hold_only_what_the_family_reads():
    models = {"run": ["stst"], "seeds": [0], "threads": 2, "device": "auto", "vision": {"size": 48},
              "affect": {"dimensions": ["arousal"]}, "max_missing_fraction": 0.5, "select_by": "f1_weighted",
              "overrides": {"stst": {"epochs": 2}, "lr": {"C": 2.0}}}
    assert job_settings("stst", models) == {"device": "auto", "max_missing_fraction": 0.5,
                                            "select_by": "f1_weighted", "overrides": {"stst": {"epochs": 2}}}
    assert job_settings("sta_drn", models) == {"device": "auto", "vision": {"size": 48}, "overrides": {"sta_drn": {}}}
    assert set(job_settings("shallow_a", models)) == {"device", "affect", "overrides"}


def test_machine_keys_reach_the_job_through_its_environment_not_its_settings(monkeypatch):
    """GPU slots and the checkpoint cadence change how a job runs on this machine, not its result:
    they are not in a job's settings (Snakemake's params, so changing one reruns no training) but
    in its environment, and the job reads them back typed."""
    from facevox.models.families import MACHINE_KEYS, machine_environment, machine_settings
    from facevox.training.loop import run_settings

    models = {"run": ["sta_drn"], "device": "auto", "overrides": {}, "gpu_lock_dir": "/scratch/locks",
              "jobs_per_gpu": 2, "gpu_wait_s": 60, "checkpoint_every_s": 0,
              "vision": {"size": 112, "workers": 3, "prefetch": 4}}
    job = job_settings("sta_drn", models)
    assert not set(job) & set(MACHINE_KEYS) and job["vision"] == {"size": 112}
    env = machine_environment(models)
    assert env == {"FACEVOX_GPU_LOCK_DIR": '"/scratch/locks"', "FACEVOX_JOBS_PER_GPU": "2",
                   "FACEVOX_GPU_WAIT_S": "60", "FACEVOX_CHECKPOINT_EVERY_S": "0",
                   "FACEVOX_VISION_WORKERS": "3", "FACEVOX_VISION_PREFETCH": "4"}
    assert machine_settings(env) == {"gpu_lock_dir": "/scratch/locks", "jobs_per_gpu": 2, "gpu_wait_s": 60,
                                     "checkpoint_every_s": 0, "vision": {"workers": 3, "prefetch": 4}}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    # what the job gets: its settings, the machine keys from the environment; given settings win
    settings = run_settings({**job, "device": "cpu", "jobs_per_gpu": 3})
    assert (settings["gpu_lock_dir"], settings["jobs_per_gpu"], settings["gpu_wait_s"],
            settings["checkpoint_every_s"]) == ("/scratch/locks", 3, 60, 0)
    assert (settings["vision"]["size"], settings["vision"]["workers"], settings["vision"]["prefetch"]) == (112, 3, 4)
    monkeypatch.setenv("FACEVOX_GPU_WAIT_S", "soon")
    with pytest.raises(FacevoxError, match="FACEVOX_GPU_WAIT_S='soon': not a value of models.gpu_wait_s"):
        machine_settings(dict(os.environ))


@pytest.mark.parametrize("name", list_models())
def test_every_model_states_its_paper_display_name_and_known_keys(name):
    spec = get_spec(name)
    assert spec.paper and spec.display, name
    assert set(spec.training) <= set(TRAINING_KEYS), name
    assert set(spec.tiny) <= set(spec.defaults), name


def test_overrides_are_split_and_unknown_keys_named():
    arch, train = split_overrides("stst", {"dropout": 0.1, "epochs": 3})
    assert arch == {"dropout": 0.1} and train == {"epochs": 3}
    with pytest.raises(FacevoxError, match="unknown key 'dropuot'.*dropout"):
        split_overrides("stst", {"dropuot": 0.1})
    with pytest.raises(FacevoxError, match="unknown model 'stsd'"):
        get_spec("stsd")


def test_check_overrides_names_every_typo_before_any_job():
    """What common.smk calls when the DAG is built: the training job's own message."""
    check_overrides({"stst": {"epochs": 2}, "lr": {"C": 0.5}})
    check_overrides({})
    with pytest.raises(FacevoxError) as info:
        check_overrides({"stst": {"epoch": 2}})
    assert str(info.value).startswith("config: models.overrides.stst: unknown key 'epoch' (did you mean 'epochs'?); "
                                      "architecture keys: d_model, dropout, ")
    assert str(info.value).endswith("training keys: " + ", ".join(TRAINING_KEYS))
    with pytest.raises(FacevoxError) as info:
        check_overrides({"sstt": {"epochs": 2}, "stst": {"epoch": 2}, "svm": 3})
    lines = str(info.value).splitlines()
    assert lines[0] == "config: 3 problem(s) in models.overrides:"
    assert lines[1].startswith("  models.overrides: unknown model 'sstt' (nearest: 'stst'); known: blstm, ")
    assert lines[2].startswith("  models.overrides.stst: unknown key 'epoch'")
    assert lines[3] == "  models.overrides.svm: must be a mapping of keys to values, got 3"


@pytest.mark.parametrize("name", SEQUENCE)
def test_paper_size_model_maps_slices_to_class_logits(name):
    torch.manual_seed(0)
    model = create_model(name, n_visual=136, n_acoustic=25, n_classes=2, seq_len=300).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 300, 136), torch.rand(2, 300, 25))
    assert out.shape == (2, 2) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", SEQUENCE)
def test_every_sequence_model_memorises_16_slices(name):
    """100 % training accuracy on 16 random slices with random labels within 150 Adam steps."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    visual, acoustic = torch.rand(16, 40, 136, generator=g), torch.rand(16, 40, 25, generator=g)
    labels = torch.arange(16) % 2
    model = create_model(name, n_visual=136, n_acoustic=25, n_classes=2, seq_len=40, **get_spec(name).tiny)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    for step in range(150):
        model.train()
        loss = torch.nn.functional.cross_entropy(model(visual, acoustic), labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if step % 10 == 9:
            model.eval()
            with torch.no_grad():
                if (model(visual, acoustic).argmax(1) == labels).all():
                    break
    model.eval()
    with torch.no_grad():
        accuracy = (model(visual, acoustic).argmax(1) == labels).float().mean().item()
    assert accuracy == 1.0, f"{name}: {accuracy:.2f} after {step + 1} steps"


def test_classical_statistics_are_mean_and_std_over_real_rows():
    from facevox.models.classical import slice_statistics

    x = np.array([[[1.0, np.nan], [3.0, 2.0], [np.nan, 4.0]]])  # 1 slice, 3 rows, 2 columns
    assert slice_statistics(x).tolist() == [[2.0, 3.0, 1.0, 1.0]]


def test_sweep_variants_have_readable_stable_names_that_parse_back():
    from facevox.models.families import parse_variant, run_models, sweep_variants, with_variant_overrides

    variants = sweep_variants({"stst": {"lr": [1e-4, 3e-4], "dropout": [0.1, 0.3]}})["stst"]
    assert variants == ["stst@lr=0.0001,dropout=0.1", "stst@lr=0.0001,dropout=0.3",
                        "stst@lr=0.0003,dropout=0.1", "stst@lr=0.0003,dropout=0.3"]
    assert parse_variant("stst@lr=0.0001,dropout=0.3") == ("stst", {"lr": 0.0001, "dropout": 0.3})
    assert parse_variant("stst") == ("stst", {})
    assert parse_variant("svm@kernel=linear,C=10") == ("svm", {"kernel": "linear", "C": 10})
    assert parse_variant("x@ks=[3,5],on=true") == ("x", {"ks": [3, 5], "on": True})
    # the run: a swept model becomes its variants, in place
    assert run_models(["lr", "stst"], {"stst": {"lr": [1e-4], "dropout": [0.1]}}) == ["lr", "stst@lr=0.0001,dropout=0.1"]
    with pytest.raises(FacevoxError, match="not in models.run"):
        run_models(["lr"], {"stst": {"lr": [1e-4]}})
    # each variant's overrides: the model's own with the variant's values on top
    cfg = with_variant_overrides({"overrides": {"stst": {"epochs": 5, "lr": 1.0}}}, {"stst": {"lr": [1e-4]}})
    assert cfg["overrides"]["stst@lr=0.0001"] == {"epochs": 5, "lr": 0.0001}
    with pytest.raises(FacevoxError, match="cannot be part of a variant"):
        sweep_variants({"stst": {"pos_encoding": ["a,b"]}})


def test_a_variant_is_its_model_for_the_catalogue_and_the_checks():
    from facevox.models import check_overrides
    from facevox.models.families import check_run, display_name, family

    assert family("stst@lr=0.0001").name == "sequence" and display_name("stst@lr=0.0001") == "STST"
    check_run(["stst@lr=0.0001"])
    check_overrides({"stst@lr=0.0001": {"lr": 0.0001}})
    with pytest.raises(FacevoxError, match="unknown key 'lrate'"):
        check_overrides({"stst@lrate=0.1": {"lrate": 0.1}})


def test_sweep_keys_are_checked_like_overrides_and_named_as_sweeps():
    from facevox.models import check_sweeps

    check_sweeps({"stst": {"lr": [1e-4, 3e-4], "dropout": [0.1]}, "svm": {"C": [1, 10]}})
    with pytest.raises(FacevoxError, match=r"sweeps\.stst: unknown key 'lrate'"):
        check_sweeps({"stst": {"lrate": [0.1]}})
    with pytest.raises(FacevoxError, match="sweeps: unknown model 'stsx'"):
        check_sweeps({"stsx": {"lr": [0.1]}})
    with pytest.raises(FacevoxError, match=r"sweeps\.stst: protocol 'nope'"):
        check_sweeps({"stst": {"protocol": ["whole", "nope"]}})
