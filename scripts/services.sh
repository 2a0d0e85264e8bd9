#!/usr/bin/env bash
# Make sure the servers the tests talk to are up: PostgreSQL on 127.0.0.1:5432.
# On these machines they are installed and normally running already; this
# starts PostgreSQL if it stopped. The S3 server (moto) is started by the
# tests themselves.
set -uo pipefail
pg_up() { (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; }
if ! pg_up && command -v pg_ctlcluster >/dev/null 2>&1; then
  version=$(ls /etc/postgresql 2>/dev/null | head -n 1)
  [ -n "$version" ] && pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 20); do pg_up && break; sleep 0.5; done
fi
pg_up || echo "scripts/services.sh: PostgreSQL is not reachable on 127.0.0.1:5432;" \
  "its tests will fail" >&2
exit 0
