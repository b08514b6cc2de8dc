# Helpers for the local stack scripts. Sourced, not executed.
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

# Messages never fail a script: stopping must go on when the terminal or the
# pipe they went to is gone (`make run |& tee log`, then Ctrl-C: tee dies
# first).
say() { printf '==> %s\n' "$*" >&2 2>/dev/null || true; }
die() { printf 'error: %s\n' "$*" >&2 2>/dev/null || true; exit 1; }

# pid_alive FILE: the process recorded in FILE is running.
pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# wait_for DESCRIPTION SECONDS COMMAND...: polls COMMAND until it succeeds.
wait_for() {
  local what="$1" seconds="$2"; shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      return 1
    fi
    sleep 0.2
  done
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# stop_pid FILE NAME: TERM, then KILL after 20 s.
stop_pid() {
  local file="$1" name="$2"
  if pid_alive "$file"; then
    local pid; pid="$(cat "$file")"
    kill "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 20))
    while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
      say "$name did not stop in 20 s; killing it"
      kill -9 "$pid" 2>/dev/null || true
    fi
    say "$name stopped"
  fi
  rm -f "$file"
}
