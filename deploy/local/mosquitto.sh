#!/usr/bin/env bash
# mosquitto.sh install|up|down|status — the local MQTT broker (Debian's
# mosquitto) on loopback, for sensors that publish JSON (the MQTT bridge
# takes their messages to ingest). Its password file and ACLs are generated
# from the device registry ($MQTT_DEVICES) at every start; its data (the
# bridge's persistent session) lives under $STACK_DIR/mosquitto.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

dir="$STACK_DIR/mosquitto"
pidfile="$dir/mosquitto.pid"

install() {
  if command -v mosquitto >/dev/null && command -v mosquitto_passwd >/dev/null \
     && command -v mosquitto_pub >/dev/null; then
    return
  fi
  say "installing Debian's mosquitto and mosquitto-clients (one time)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto mosquitto-clients >&2
}

# config DIR PORT REGISTRY: writes DIR/mosquitto.conf, DIR/passwd, DIR/acl.
config() {
  local out="$1" port="$2" registry="$3"
  mkdir -p "$out/data"
  python3 "$CITYBRAIN_ROOT/deploy/local/mosquitto/broker_files.py" "$registry" "$out"
  mosquitto_passwd -U "$out/passwd"
  sed -e "s|@DIR@|$out|g" -e "s|@PORT@|$port|g" -e "s|@USER@|$(id -un)|g" \
      "$CITYBRAIN_ROOT/deploy/local/mosquitto/mosquitto.conf.in" > "$out/mosquitto.conf"
}

up() {
  install
  if pid_alive "$pidfile" && port_open "$MQTT_PORT"; then
    say "mosquitto already running (127.0.0.1:$MQTT_PORT)"
    return
  fi
  if port_open "$MQTT_PORT"; then
    die "port $MQTT_PORT is taken by another process; set MQTT_PORT"
  fi
  config "$dir" "$MQTT_PORT" "$MQTT_DEVICES"
  say "starting mosquitto (127.0.0.1:$MQTT_PORT, devices from $MQTT_DEVICES, data in $dir/data)"
  (cd "$dir" && exec setsid mosquitto -c "$dir/mosquitto.conf" >>"$dir/mosquitto.log" 2>&1 </dev/null) &
  echo $! > "$pidfile"
  if ! wait_for mosquitto 20 port_open "$MQTT_PORT"; then
    tail -20 "$dir/mosquitto.log" >&2 || true
    die "mosquitto did not listen on $MQTT_PORT within 20 s (log: $dir/mosquitto.log)"
  fi
  say "mosquitto ready"
}

down() { stop_pid "$pidfile" mosquitto; }

status() {
  if pid_alive "$pidfile" && port_open "$MQTT_PORT"; then
    echo "mosquitto: running (pid $(cat "$pidfile"), 127.0.0.1:$MQTT_PORT)"
  else
    echo "mosquitto: stopped"; return 1
  fi
}

case "${1:-status}" in
  install) install ;;
  up|start) up ;;
  down|stop) down ;;
  status) status ;;
  config) shift; config "$@" ;;
  *) die "usage: mosquitto.sh install|up|down|status|config DIR PORT REGISTRY" ;;
esac
