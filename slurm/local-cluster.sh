#!/usr/bin/env bash
# A real one-node SLURM cluster on localhost, for trying `reverie submit` and for the tests.
#
#   slurm/local-cluster.sh start     # prints the `export SLURM_CONF=...` line to use it
#   slurm/local-cluster.sh status
#   slurm/local-cluster.sh stop
#
# Everything (config, munge key and socket, state, logs) lives in $REVERIE_SLURM_DIR (default
# /tmp/reverie-slurm); nothing under /etc is changed. It runs Debian's slurm-wlm and munge, and
# installs them when they are missing. slurmd must run as root (it starts jobs as their users), so
# run this as root or with sudo. The node declares $REVERIE_SLURM_CPUS CPUs (default 8, more than a
# laptop has, so that a few small test jobs run side by side) and the partition `local`. A requeued
# job may start again 10 s after the requeue (cred_expire; 120 s by default).
set -euo pipefail

STATE=${REVERIE_SLURM_DIR:-/tmp/reverie-slurm}
CPUS=${REVERIE_SLURM_CPUS:-8}
HOST=$(hostname -s)
CONF=$STATE/slurm.conf

install_packages() {
  command -v slurmctld >/dev/null && command -v munged >/dev/null && return
  echo "installing slurm-wlm and munge" >&2
  local sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo sh -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge" >/dev/null
}

write_config() {
  mkdir -p "$STATE/ctld" "$STATE/spool" "$STATE/munge"
  chmod 700 "$STATE/munge"
  [ -f "$STATE/munge/munge.key" ] || { dd if=/dev/urandom of="$STATE/munge/munge.key" bs=1024 count=1 status=none; chmod 400 "$STATE/munge/munge.key"; }
  local memory; memory=$(awk '/MemTotal/ {print int($2 / 1024 / 2)}' /proc/meminfo)
  cat >"$CONF" <<CONF
ClusterName=reverie-local
SlurmctldHost=$HOST
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$STATE/munge/munge.socket,cred_expire=10
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
SlurmctldPort=${REVERIE_SLURMCTLD_PORT:-6817}
SlurmdPort=${REVERIE_SLURMD_PORT:-6818}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
ReturnToService=2
JobRequeue=1
MpiDefault=none
KillWait=10
MinJobAge=600
NodeName=$HOST CPUs=$CPUS RealMemory=$memory State=UNKNOWN
PartitionName=local Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONF
}

start() {
  install_packages
  stop_daemons
  write_config
  munged --force --key-file="$STATE/munge/munge.key" --socket="$STATE/munge/munge.socket" \
    --pid-file="$STATE/munge/munged.pid" --log-file="$STATE/munge/munged.log" --seed-file="$STATE/munge/munged.seed"
  slurmctld -f "$CONF"
  slurmd -f "$CONF"
  for _ in $(seq 60); do
    if SLURM_CONF=$CONF sinfo -h -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
      echo "export SLURM_CONF=$CONF"
      return 0
    fi
    sleep 1
  done
  echo "the local SLURM cluster did not come up; logs in $STATE" >&2
  tail -n 20 "$STATE/slurmctld.log" "$STATE/slurmd.log" >&2 || true
  return 1
}

stop_daemons() {
  for pidfile in "$STATE/slurmd.pid" "$STATE/slurmctld.pid" "$STATE/munge/munged.pid"; do
    [ -f "$pidfile" ] || continue
    local pid; pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$pidfile"
  done
}

case "${1:-start}" in
  start) start ;;
  stop) stop_daemons; rm -rf "$STATE/ctld" "$STATE/spool" ;;
  status) SLURM_CONF=$CONF sinfo && SLURM_CONF=$CONF squeue ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
