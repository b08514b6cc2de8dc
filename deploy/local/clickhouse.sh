#!/usr/bin/env bash
# clickhouse.sh install|start|stop|status — the local ClickHouse server on
# loopback, with its config and data under $STACK_DIR/clickhouse.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

dir="$STACK_DIR/clickhouse"
pidfile="$dir/clickhouse.pid"

ping() { [ "$(curl -fsS "http://127.0.0.1:$CLICKHOUSE_HTTP_PORT/ping" 2>/dev/null)" = "Ok." ]; }

install() {
  if command -v clickhouse-server >/dev/null && command -v clickhouse-client >/dev/null \
     && command -v curl >/dev/null; then
    return
  fi
  say "installing Debian's clickhouse-server and clickhouse-client (one time)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clickhouse-server clickhouse-client curl >&2
}

start() {
  install
  if pid_alive "$pidfile" && ping; then
    say "clickhouse already running (http $CLICKHOUSE_HTTP_PORT, native $CLICKHOUSE_TCP_PORT)"
    return
  fi
  if port_open "$CLICKHOUSE_HTTP_PORT"; then
    die "port $CLICKHOUSE_HTTP_PORT is taken by another process; set CLICKHOUSE_HTTP_PORT"
  fi
  mkdir -p "$dir"/{data,tmp,log,user_files,format_schemas}
  sed -e "s|@DIR@|$dir|g" -e "s|@HTTP_PORT@|$CLICKHOUSE_HTTP_PORT|g" \
      -e "s|@TCP_PORT@|$CLICKHOUSE_TCP_PORT|g" \
      "$CITYBRAIN_ROOT/deploy/local/clickhouse/config.xml.in" > "$dir/config.xml"
  cp "$CITYBRAIN_ROOT/deploy/local/clickhouse/users.xml" "$dir/users.xml"
  say "starting clickhouse (http 127.0.0.1:$CLICKHOUSE_HTTP_PORT, data in $dir/data)"
  (cd "$dir" && exec setsid clickhouse-server --config-file="$dir/config.xml" \
      >>"$dir/log/stdout.log" 2>&1 </dev/null) &
  echo $! > "$pidfile"
  if ! wait_for clickhouse 60 ping; then
    tail -20 "$dir/log/clickhouse-server.err.log" >&2 || true
    die "clickhouse did not answer on port $CLICKHOUSE_HTTP_PORT within 60 s (logs in $dir/log)"
  fi
  say "clickhouse ready"
}

stop() { stop_pid "$pidfile" clickhouse; }

status() {
  if pid_alive "$pidfile" && ping; then
    echo "clickhouse: running (pid $(cat "$pidfile"), http 127.0.0.1:$CLICKHOUSE_HTTP_PORT)"
  else
    echo "clickhouse: stopped"; return 1
  fi
}

"${1:-status}"
