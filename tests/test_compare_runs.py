"""tests/cluster/compare_runs.py, the local-vs-SLURM comparison: equal scikit-learn estimators are
equal however the process that loads them shares their strings."""
import pickle
import subprocess
import sys
from pathlib import Path

CLUSTER = Path(__file__).resolve().parent / "cluster"


def test_one_forest_loaded_twice_compares_equal(tmp_path):
    """A random forest written once and loaded twice in one process pickles to different bytes (the
    first load interns the parameter names its trees share; the second cannot share them), which
    made a local and a SLURM run's identical `rf` models read as different. The comparison
    pickles without the memo."""
    blob = tmp_path / "rf.pkl"
    subprocess.run([sys.executable, "-c", (
        "import pickle, numpy as np\n"
        "from sklearn.ensemble import RandomForestClassifier\n"
        "x = np.random.default_rng(0).normal(size=(20, 3))\n"
        "rf = RandomForestClassifier(n_estimators=5, random_state=0).fit(x, [0, 1] * 10)\n"
        f"pickle.dump({{'estimator': rf}}, open({str(blob)!r}, 'wb'))\n")], check=True)
    check = (
        "import pickle, sys\n"
        f"sys.path.insert(0, {str(CLUSTER)!r})\n"
        "from compare_runs import differences\n"
        f"a, b = (pickle.load(open({str(blob)!r}, 'rb'))['estimator'] for _ in range(2))\n"
        "print(pickle.dumps(a) == pickle.dumps(b), differences(a, b, 'rf'))\n")
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False []"  # the raw pickles differ; the comparison finds no difference
    assert pickle.loads(blob.read_bytes())["estimator"].n_estimators == 5
