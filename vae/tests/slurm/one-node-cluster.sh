#!/usr/bin/env bash
# A one-node Slurm cluster on 127.0.0.1 for the sweep's tests and for trying a study's Slurm
# launcher on one machine: munged, slurmctld and slurmd, all as root, every file (configuration,
# key, sockets, state, logs) under one folder of its own.
#
#   one-node-cluster.sh start DIR   writes DIR/slurm.conf from this machine's cores and memory,
#                                   starts the three daemons, waits until the node takes jobs,
#                                   and prints the line that points Slurm's commands at it:
#                                   export SLURM_CONF=DIR/slurm.conf
#   one-node-cluster.sh stop DIR    stops the daemons it started (by the pids in DIR), and only those.
#
# Needs Debian's slurm-wlm and munge packages (apt-get install -y slurm-wlm munge) and root:
# slurmd runs jobs as their submitting user, which only root can do.
set -euo pipefail

usage() { echo "usage: $0 start|stop DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
action=$1
dir=$(mkdir -p "$2" && cd "$2" && pwd)

stop_daemons() {
    for daemon in slurmd slurmctld munged; do
        pidfile="$dir/$daemon.pid"
        [ -f "$pidfile" ] || continue
        pid=$(cat "$pidfile")
        if kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -9 "$pid" 2>/dev/null || true
        fi
        rm -f "$pidfile"
    done
}

case "$action" in
stop)
    stop_daemons
    exit 0
    ;;
start) ;;
*) usage ;;
esac

for tool in munged slurmctld slurmd sinfo; do
    command -v "$tool" >/dev/null || { echo "$0: $tool not found (apt-get install -y slurm-wlm munge)" >&2; exit 1; }
done
[ "$(id -u)" -eq 0 ] || { echo "$0: slurmd must run as root to start jobs" >&2; exit 1; }

# A free TCP port on 127.0.0.1 (so that this cluster never meets a Slurm the machine already runs).
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

mkdir -p "$dir/state" "$dir/spool" "$dir/munge"
chmod 700 "$dir/munge"
# munged's key: 1 KiB of randomness, readable by root only.
if [ ! -f "$dir/munge/munge.key" ]; then
    head -c 1024 /dev/urandom >"$dir/munge/munge.key"
    chmod 400 "$dir/munge/munge.key"
fi
munged --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.socket" \
    --pid-file="$dir/munged.pid" --log-file="$dir/munged.log" --seed-file="$dir/munge/munge.seed" --force

cpus=$(nproc)
# Slurm's RealMemory is in MiB; leave a tenth of the machine to everything else.
memory=$(awk '/^MemTotal:/ { printf "%d", $2 / 1024 * 0.9 }' /proc/meminfo)
cat >"$dir/slurm.conf" <<CONF
# A one-node cluster on 127.0.0.1, written by $(basename "$0").
ClusterName=onenode
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire: a requeued job waits this long before it starts again (Slurm's default: 120 s).
AuthInfo=socket=$dir/munge/munge.socket,cred_expire=5
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
# Seconds between SIGTERM and SIGKILL when a job is cancelled: time for a checkpoint.
KillWait=30
MinJobAge=600
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF="$dir/slurm.conf"

slurmctld -f "$SLURM_CONF" -i
slurmd -f "$SLURM_CONF" -N localhost
# The node takes jobs once slurmd has registered with slurmctld.
for _ in $(seq 100); do
    state=$(sinfo -h -n localhost -o %t 2>/dev/null || true)
    case "$state" in idle|mix|alloc) echo "export SLURM_CONF=$SLURM_CONF"; exit 0 ;; esac
    sleep 0.2
done
echo "$0: the node did not come up (state: ${state:-none}); logs in $dir" >&2
stop_daemons
exit 1
