#!/usr/bin/env bash
# On a GPU host: which call in Anvil's seccomp deny list does the CUDA driver need?
# Builds the filter with one group of calls left out at a time and starts CUDA under bwrap with it.
# Needs bwrap (ANVIL_BWRAP or PATH), libseccomp headers, and a python with torch.
set -u
cd "$(dirname "$0")/.."
B=${ANVIL_BWRAP:-bwrap}
PY=$(python3 -c 'import sys; print(sys.executable)')
gcc -O2 -o /tmp/anvil-sf sandbox/c/seccomp_filter.c -lseccomp || exit 1
TEST="import torch; torch.cuda.init(); print('cuda ok')"
DEVS=""; for d in /dev/nvidia*; do [ -e "$d" ] && DEVS="$DEVS --dev-bind $d $d"; done
BASE="--unshare-all --die-with-parent --ro-bind /usr /usr --symlink usr/lib /lib --symlink usr/lib64 /lib64 --symlink usr/bin /bin --symlink usr/sbin /sbin --ro-bind /etc/ld.so.cache /etc/ld.so.cache --proc /proc --dev /dev --tmpfs /tmp --ro-bind /sys /sys $DEVS"
[ -d /opt ] && BASE="$BASE --ro-bind /opt /opt"
for group in "" "socket socketpair connect bind listen accept accept4 sendto recvfrom sendmsg recvmsg" "personality" \
  "ptrace process_vm_readv process_vm_writev" "userfaultfd" "io_uring_setup io_uring_enter io_uring_register" "bpf perf_event_open" \
  "keyctl add_key request_key" "mount umount2 pivot_root chroot unshare setns" "open_by_handle_at name_to_handle_at fanotify_init" "syslog"; do
  /tmp/anvil-sf /tmp/anvil-sf.bpf $group || { echo "filter build failed for: $group"; continue; }
  out=$($B $BASE --seccomp 9 -- "$PY" -c "$TEST" 9</tmp/anvil-sf.bpf 2>&1 | tail -1)
  echo "allowed [${group:-nothing}]: $out"
done
