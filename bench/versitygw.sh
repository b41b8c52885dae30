# Starts a versitygw (posix backend) on a free loopback port for the S3
# benchmarks; sourced, not run. Needs $base (a temp dir the caller
# removes); sets endpoint and exports the AWS variables of its keys. The
# server is stopped when the shell exits.
vgw=${MEPHSTORE_VERSITYGW:-$(command -v versitygw || echo "$(go env GOPATH)/bin/versitygw")}
[ -x "$vgw" ] || { echo "versitygw not found (scripts/deps installs it)" >&2; exit 1; }
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$base/data/bench"
ROOT_ACCESS_KEY=bench ROOT_SECRET_KEY=benchsecret "$vgw" --port "127.0.0.1:$port" --quiet posix "$base/data" >"$base/vgw.log" 2>&1 &
vpid=$!
trap 'kill $vpid 2>/dev/null; wait $vpid 2>/dev/null; chmod -R u+w "$base" 2>/dev/null; rm -rf "$base"' EXIT
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=benchsecret AWS_REGION=us-east-1
endpoint=http://127.0.0.1:$port
for _ in $(seq 100); do curl -s -o /dev/null "$endpoint" && break; sleep 0.05; done
