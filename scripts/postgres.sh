#!/usr/bin/env bash
# Makes sure the local PostgreSQL server the registry tests use is up (the machine image has it;
# it may have been stopped). Tests read CURATE_TEST_POSTGRES, default postgres://root@127.0.0.1:5432/test.
set -euo pipefail
if pg_isready -q -h 127.0.0.1 -p 5432; then exit 0; fi
if command -v pg_ctlcluster >/dev/null; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
fi
for _ in $(seq 1 50); do pg_isready -q -h 127.0.0.1 -p 5432 && exit 0; sleep 0.2; done
echo "PostgreSQL is not reachable on 127.0.0.1:5432; the registry tests need it" >&2
exit 1
