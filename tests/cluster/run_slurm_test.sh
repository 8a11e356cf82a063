#!/usr/bin/env bash
# Real test of workflow/profiles/slurm: a one-node SLURM cluster on this machine (munge,
# slurmctld, slurmd; two fake GPUs), the demo DAG submitted through the profile, proof that
# every job went through sbatch, outputs compared with a local run, daemons stopped.
# What it does, the tricks it needs and how long it takes: tests/cluster/README.md.
#
#   tests/cluster/run_slurm_test.sh            (root, or a user with sudo; Debian/Ubuntu)
#
# Environment: VENV (default <repo>/.venv, needs snakemake-executor-plugin-slurm),
# FACEVOX_SLURM_WORK (scratch folder, default /tmp/facevox-slurm-test; wiped first),
# MODELS (models trained, default "lr svm stst": two without and one with `gpu: 1`),
# KEEP_DAEMONS=1 (leave the cluster running for a look; stop it with the printed command).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
VENV=${VENV:-$REPO/.venv}
WORK=${FACEVOX_SLURM_WORK:-/tmp/facevox-slurm-test}
MODELS=${MODELS:-lr svm stst}
KEEP_DAEMONS=${KEEP_DAEMONS:-0}
SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
HOST=$(hostname -s)
export PATH="$VENV/bin:$PATH" HF_HUB_OFFLINE=1
T0=$SECONDS

step() { printf '[slurm-test %4ds] %s\n' $((SECONDS - T0)) "$*"; }
fail() { printf '[slurm-test %4ds] FAIL: %s\n' $((SECONDS - T0)) "$*" >&2; exit 1; }

python -c "import snakemake_executor_plugin_slurm" 2>/dev/null \
  || fail "$VENV lacks snakemake-executor-plugin-slurm (pip install it, pinned in pyproject.toml)"

# --- 1. Debian packages -------------------------------------------------------------------
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null \
   || ! command -v sbatch >/dev/null; then
  step "installing slurmctld slurmd munge slurm-client"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    slurmctld slurmd munge slurm-client >/dev/null
fi
step "$(slurmctld -V), $(munged --version 2>&1 | head -1)"

# --- 2. configuration, under $WORK -----------------------------------------------------------
# Stopping: only the daemons this script started (their pid files under $WORK) and its links.
stop_daemons() {
  local name pid
  for name in slurmd slurmctld munged; do
    if [ -s "$WORK/run/$name.pid" ]; then
      pid=$(cat "$WORK/run/$name.pid")
      $SUDO kill "$pid" 2>/dev/null || true
      for _ in $(seq 50); do $SUDO kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
  done
  for name in slurm.conf gres.conf; do
    [ "$(readlink "/etc/slurm/$name")" = "$WORK/etc/$name" ] && $SUDO rm -f "/etc/slurm/$name"
  done
  return 0
}
on_exit() {
  local rc=$?
  if [ "$KEEP_DAEMONS" = 1 ]; then
    step "daemons left running (KEEP_DAEMONS=1); stop with:" \
         "kill \$(cat $WORK/run/slurmd.pid) \$(cat $WORK/run/slurmctld.pid) \$(cat $WORK/run/munged.pid);" \
         "rm /etc/slurm/slurm.conf /etc/slurm/gres.conf"
  else
    stop_daemons
    step "daemons stopped"
  fi
  [ $rc = 0 ] && step "PASS (total ${SECONDS}s)" || step "FAILED (rc $rc); logs under $WORK/log"
}

stop_daemons   # a cluster an earlier run left (KEEP_DAEMONS=1)
$SUDO rm -rf "$WORK"
mkdir -p "$WORK"/{etc,run,log,state/ctld,state/d}
# The files live in $WORK/etc; /etc/slurm/ gets links to them (removed at the end), because
# the plugin's job step strips every SLURM_* variable, SLURM_CONF included, before its
# `srun`: that srun only finds the default /etc/slurm/slurm.conf.
CONF=$WORK/etc/slurm.conf
MARK="# one-node test cluster written by tests/cluster/run_slurm_test.sh"
if [ -e /etc/slurm/slurm.conf ] && ! grep -qF "$MARK" /etc/slurm/slurm.conf 2>/dev/null; then
  fail "/etc/slurm/slurm.conf exists (a real cluster?): not touching it"
fi
MUNGE_SOCKET=$WORK/run/munge.socket
# The node: two fake GPUs, and at least 4 CPUs and 64 GB - more than a small CI machine has -
# so that the profile's largest requests fit (train: 4 CPUs x 4000 MB, twice that on a retry);
# SlurmdParameters=config_overrides makes slurmd accept the declared sizes. Nothing enforces
# them here (CR_Core: memory is not a consumable; no cgroups), the real cores are shared.
CPUS=$(( $(nproc) > 4 ? $(nproc) : 4 ))
MEM_MB=$(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo)
MEM_MB=$(( MEM_MB > 65536 ? MEM_MB : 65536 ))
cat > "$CONF" <<EOF
$MARK
ClusterName=facevoxtest
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_SOCKET
StateSaveLocation=$WORK/state/ctld
SlurmdSpoolDir=$WORK/state/d
SlurmctldPidFile=$WORK/run/slurmctld.pid
SlurmdPidFile=$WORK/run/slurmd.pid
SlurmctldLogFile=$WORK/log/slurmctld.log
SlurmdLogFile=$WORK/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# no cgroups in containers/VMs without systemd delegation
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# no slurmdbd: sacct cannot list jobs, so Snakemake polls squeue (and MinJobAge keeps
# finished jobs visible to squeue for the whole run); jobcomp/filetxt records every job
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$WORK/log/jobcomp.txt
MinJobAge=3600
ReturnToService=2
SchedulerType=sched/backfill
SlurmdParameters=config_overrides
GresTypes=gpu
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB Gres=gpu:2 State=UNKNOWN
PartitionName=cpu Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$HOST MaxTime=INFINITE State=UP
EOF
# fake GPUs: slurmd only needs a device file per GPU to hand out CUDA_VISIBLE_DEVICES
printf 'Name=gpu File=/dev/null\nName=gpu File=/dev/zero\n' > "$WORK/etc/gres.conf"
$SUDO mkdir -p /etc/slurm
$SUDO ln -sfn "$CONF" /etc/slurm/slurm.conf
$SUDO ln -sfn "$WORK/etc/gres.conf" /etc/slurm/gres.conf
trap on_exit EXIT
trap 'exit 130' INT TERM   # so that on_exit runs

# --- 3. daemons ----------------------------------------------------------------------------

step "starting munged, slurmctld, slurmd"
# a private munge key and socket: no interference with a munged the machine may already run
dd if=/dev/urandom of="$WORK/etc/munge.key" bs=1024 count=1 status=none
chmod 400 "$WORK/etc/munge.key"
$SUDO munged --force --key-file="$WORK/etc/munge.key" --socket="$MUNGE_SOCKET" \
  --pid-file="$WORK/run/munged.pid" --log-file="$WORK/log/munged.log" --seed-file="$WORK/run/munged.seed"
$SUDO slurmctld -c
$SUDO slurmd
state=""
for i in $(seq 60); do
  state=$(sinfo -h -N -n "$HOST" -o '%T' 2>/dev/null | head -1 || true)
  case "$state" in
    idle) break ;;
    # a node seen for the first time comes up "down"/"drained": resume it once
    down*|drain*|unknown*) [ "$i" -gt 2 ] && scontrol update nodename="$HOST" state=resume 2>/dev/null || true ;;
  esac
  sleep 1
done
[ "$state" = idle ] || fail "node $HOST is '$state', not idle; see $WORK/log/slurmd.log and slurmctld.log"
step "cluster up: $(sinfo -h -o '%P %a %D %T %G' | tr '\n' ';')"

# --- 4. two copies of the repository, same inputs ------------------------------------------
OVERLAY=$WORK/overlay.yaml
cat > "$OVERLAY" <<EOF
# test overlay: a few models keep the run short (lr, svm: gpu 0; stst: gpu 1)
models:
  run: [$(echo $MODELS | sed 's/ /, /g')]
  seeds: [0]
EOF
CONFIG=(--configfile config.yaml config/demo.yaml "$OVERLAY")
[ -s "$REPO/resources/demo/samples.tsv" ] || (cd "$REPO" && facevox demo-data --out resources/demo)
for copy in local slurm; do
  mkdir "$WORK/$copy"
  tar -C "$REPO" --exclude=./results --exclude=./.snakemake --exclude=./.venv --exclude=./.git \
    --exclude=__pycache__ --exclude=.pytest_cache -cf - . | tar -C "$WORK/$copy" -xf -
done
# Degenerate videos beside the demo's (issue 29; DEGENERATE=0 leaves them out): one frame, a JPEG
# saved as .mp4, 16x16, a still at 1 fps, black screen with speech, an audio stream without
# samples, 1 fps, a file cut off mid-frame, audio only. Both runs must end rc 0 with them.
if [ "${DEGENERATE:-1}" = 1 ]; then
  DEGENERATE_CASES="one_frame thumbnail tiny still black_speech zero_audio fps1 ends_mid_frame audio_only"
  (cd "$REPO" && python tests/corpus/make_corpus.py "$WORK/corpus" --only $DEGENERATE_CASES > /dev/null)
  for copy in local slurm; do
    mkdir -p "$WORK/$copy/resources/demo/videos/degenerate"
    i=0
    for case in $DEGENERATE_CASES; do
      file=$(ls "$WORK/corpus/$case".*)
      cp "$file" "$WORK/$copy/resources/demo/videos/degenerate/"
      split=$(echo train dev test | cut -d' ' -f$((i % 3 + 1)))
      label=$([ $((i % 2)) = 0 ] && echo depression || echo normal)
      printf '%s\tvideos/degenerate/%s\tdeg_%s\t%s\t%s\t%s\tf\n' "$case" "$(basename "$file")" "$case" \
        "$split" "$label" $([ "$label" = depression ] && echo 18 || echo 3) >> "$WORK/$copy/resources/demo/samples.tsv"
      i=$((i + 1))
    done
  done
  step "degenerate videos added to the demo sheet: $DEGENERATE_CASES"
fi

# --- 5. the reference: the same DAG run locally ---------------------------------------------
step "local run (--cores 2)"
t=$SECONDS
(cd "$WORK/local" && snakemake --cores 2 "${CONFIG[@]}" --quiet rules > "$WORK/log/local-run.log" 2>&1) \
  || { tail -30 "$WORK/log/local-run.log"; fail "local run failed"; }
LOCAL_S=$((SECONDS - t))
step "local run done in ${LOCAL_S}s"

# --- 6. the same DAG through the SLURM profile ----------------------------------------------
# Only test-cluster settings are given here; everything else comes from the profile:
#   --slurm-status-command squeue: no slurmdbd, so sacct has nothing (Snakemake would wait forever)
#   --slurm-init-seconds-before-status-checks 5: first poll after 5 s, not 40 s (short jobs)
#   --slurm-keep-successful-logs: keep one SLURM log per job for the checks below
cd "$WORK/slurm"
# The plan: job count (without the target rule `all`) and the jobs that ask for a GPU, named
# as the plugin's --comment names them (rule_<rule>_wildcards_<values joined by _>).
snakemake -n "${CONFIG[@]}" > "$WORK/log/dry-run.log" 2>&1 || { tail -20 "$WORK/log/dry-run.log"; fail "dry run failed"; }
N_JOBS=$(awk '$1 == "total" {total = $2} $1 == "all" {all = $2} END {print total - all}' "$WORK/log/dry-run.log")
awk '/^rule / {rule = $2; sub(":", "", rule); wc = ""}
     /^    wildcards:/ {wc = $0; sub(/^ *wildcards: /, "", wc); gsub(/[a-z_]+=/, "", wc); gsub(/, /, "_", wc)}
     /^    resources:.*gpu=[1-9]/ {print "rule_" rule "_wildcards_" wc}' "$WORK/log/dry-run.log" \
  | sort > "$WORK/log/gpu-jobs.expected"
# The per-video rules are one group (`group: video`, workflow/rules/common.smk): one SLURM job per
# video runs that video's whole chain; every other job is submitted on its own.
# The dry run prints each group job as "Group job video ..." followed by its jobs, indented.
read -r N_GROUPED N_VIDEOS < <(awk '/^\[.*\] Group job / {groups++}
     /^    (local)?rule / {grouped++}
     END {print grouped + 0, groups + 0}' "$WORK/log/dry-run.log")
N_SUBMIT=$((N_JOBS - N_GROUPED + N_VIDEOS))
step "SLURM run of $N_JOBS jobs ($N_GROUPED of them in $N_VIDEOS per-video groups: $N_SUBMIT submissions)," \
     "$(wc -l < "$WORK/log/gpu-jobs.expected") with gpu: 1 (--profile workflow/profiles/slurm)"
t=$SECONDS
FACEVOX_SLURM_ACCOUNT=facevox FACEVOX_SLURM_PARTITION=cpu FACEVOX_SLURM_GPU_PARTITION=gpu \
  timeout "${SLURM_RUN_TIMEOUT:-1800}" snakemake --profile workflow/profiles/slurm "${CONFIG[@]}" \
  --slurm-status-command squeue --slurm-init-seconds-before-status-checks 5 \
  --slurm-keep-successful-logs > "$WORK/log/slurm-run.log" 2>&1 \
  || { tail -40 "$WORK/log/slurm-run.log"; fail "SLURM run failed (or took over ${SLURM_RUN_TIMEOUT:-1800}s)"; }
SLURM_S=$((SECONDS - t))
step "SLURM run done in ${SLURM_S}s"

# --- 7. proof that the jobs went through sbatch --------------------------------------------
squeue --states=all -h -O 'JobID:7,Partition:6,Account:9,State:11,NumCPUs:5,MinMemory:8,TimeLimit:11,tres-per-job:12,Comment:60' \
  | sort -n > "$WORK/log/squeue.txt"
# sacct without slurmdbd: -c reads the job completion log (JobCompType=jobcomp/filetxt)
sacct -c --format=JobID,Partition,State,NodeList,Start,End > "$WORK/log/sacct.txt"
step "squeue --states=all (jobs stay listed for MinJobAge):"
sed 's/^/    /' "$WORK/log/squeue.txt"
step "sacct -c (first lines):"
head -5 "$WORK/log/sacct.txt" | sed 's/^/    /'
n_done=$(grep -c ' COMPLETED ' "$WORK/log/squeue.txt" || true)
n_sacct=$(grep -c ' COMPLETED ' "$WORK/log/sacct.txt" || true)
n_sbatch=$(grep -c 'has been submitted with SLURM jobid' "$WORK/log/slurm-run.log" || true)
n_logs=$(find .snakemake/slurm_logs -name '*.log' | wc -l)
n_ctld=$(grep -c '_job_complete: JobId=[0-9]* done' "$WORK/log/slurmctld.log" || true)
step "jobs: DAG $N_JOBS ($N_SUBMIT submissions); submitted $n_sbatch; COMPLETED in squeue $n_done, in sacct -c $n_sacct;" \
     "slurmctld 'done' $n_ctld; SLURM job logs $n_logs"
[ "$N_JOBS" -gt 0 ] || fail "empty DAG"
[ "$N_VIDEOS" -gt 0 ] && [ "$N_GROUPED" -gt "$N_VIDEOS" ] || fail "no per-video group in the DAG"
for n in "$n_sbatch" "$n_done" "$n_sacct" "$n_ctld" "$n_logs"; do
  [ "$n" = "$N_SUBMIT" ] || fail "not one SLURM job per video group and per other job ($n, expected $N_SUBMIT)"
done
step "sbatch submissions: $n_sbatch = $N_VIDEOS per-video groups + $((N_SUBMIT - N_VIDEOS)) other jobs" \
     "(ungrouped: $N_JOBS)"
# gpu: 1 -> sbatch --gpus=1 (tres-per-job gres:gpu:1) on partition gpu; no other job has a GPU
grep 'gres:gpu:1' "$WORK/log/squeue.txt" | awk '{print $NF}' | sort > "$WORK/log/gpu-jobs.slurm"
diff "$WORK/log/gpu-jobs.expected" "$WORK/log/gpu-jobs.slurm" \
  || fail "the SLURM jobs with a GPU (right) are not those that ask for gpu: 1 (left)"
[ -s "$WORK/log/gpu-jobs.expected" ] || fail "no job asks for a GPU: the --gpus path is not tested"
if grep 'gres:gpu' "$WORK/log/squeue.txt" | grep -qv '^ *[0-9]* *gpu '; then
  fail "a GPU job ran outside partition gpu"
fi
# SLURM gave each GPU job a device through CUDA_VISIBLE_DEVICES; with fake GPUs torch sees no
# CUDA device, so facevox.training.device falls back to the CPU and says so in the training log
for job in $(grep '^rule_train_' "$WORK/log/gpu-jobs.expected"); do
  wc=${job#rule_train_wildcards_}; model=${wc%_*}; seed=${wc##*_}
  line=$(grep -h -m1 'device: ' "results/logs/train/$model/seed$seed.log" || true)
  [[ $line == *"CUDA_VISIBLE_DEVICES='"[0-9]* ]] || fail "train $model: no CUDA_VISIBLE_DEVICES from SLURM: $line"
  step "train $model seed $seed: ${line#* INFO }"
done

# --- 8. outputs equal the local run ---------------------------------------------------------
step "comparing outputs with the local run"
python "$REPO/tests/cluster/compare_runs.py" "$WORK/local/results" "$WORK/slurm/results" \
  || fail "outputs differ between the local and the SLURM run"
step "timings: local ${LOCAL_S}s, SLURM ${SLURM_S}s, whole test $((SECONDS - T0))s"
