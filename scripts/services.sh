#!/usr/bin/env bash
# Make sure the servers the tests talk to are up: PostgreSQL (127.0.0.1:5432)
# and Mosquitto (127.0.0.1:1883). On the project's machines both are installed
# and normally running already; this starts one that stopped. The S3 server
# (moto) and the RTSP server are started by the tests themselves.
set -uo pipefail

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() {
  for _ in $(seq 1 20); do port_open "$1" && return 0; sleep 0.5; done
  return 1
}

if ! port_open 5432 && command -v pg_ctlcluster >/dev/null 2>&1; then
  version=$(ls /etc/postgresql 2>/dev/null | head -n 1)
  [ -n "$version" ] && pg_ctlcluster --skip-systemctl-redirect "$version" main start
  wait_for 5432
fi
if ! port_open 1883 && command -v mosquitto >/dev/null 2>&1; then
  mosquitto -d -c /etc/mosquitto/mosquitto.conf
  wait_for 1883
fi

port_open 5432 || echo "scripts/services.sh: PostgreSQL is not reachable on" \
  "127.0.0.1:5432; the database tests on PostgreSQL will fail" >&2
port_open 1883 || echo "scripts/services.sh: Mosquitto is not reachable on" \
  "127.0.0.1:1883; the MQTT notification tests will fail" >&2
exit 0
