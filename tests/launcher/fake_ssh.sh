#!/bin/bash
# Test stand-in for ssh, installed as "ssh" first on PATH by the launcher's integration tests. It accepts the
# ssh options the launcher passes (-o OPT, -p PORT, ...), then runs the remote command locally in a clean
# environment (like a fresh login) so that only what the launcher exports reaches the "remote" node.
# Hosts named unreachable* fail like an unreachable host. FAKE_SSH_LOG, if set, records each call.
while [ $# -gt 0 ]; do
  case "$1" in
    -o|-p|-l|-i|-F|-J) shift 2 ;;
    -*) shift ;;
    *) break ;;
  esac
done
host="$1"
shift
if [ -n "$FAKE_SSH_LOG" ]; then
  printf '%s %s\n' "$host" "$*" >> "$FAKE_SSH_LOG"
fi
case "$host" in
  unreachable*) echo "ssh: connect to host $host port 22: Connection refused" >&2; exit 255 ;;
esac
exec env -i HOME="$HOME" PATH="$PATH" FAKE_SSH_HOST="$host" bash -c "$*"
