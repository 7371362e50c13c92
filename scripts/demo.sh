#!/usr/bin/env bash
# The main job: render the built-in baseline profile for a sample order into
# user-data and a NoCloud seed ISO. Uses $HARDBAKE_DEMO_KEY (a public key
# file) when set, else generates a throwaway SSH key.
set -euo pipefail
cd "$(dirname "$0")/.."
out=out/demo
mkdir -p "$out"
key=${HARDBAKE_DEMO_KEY:-}
if [ -z "$key" ]; then
  key=$out/id_ed25519.pub
  if [ ! -f "$key" ]; then
    ssh-keygen -q -t ed25519 -N '' -C "hardbake-demo" -f "$out/id_ed25519"
    echo "demo: generated a throwaway SSH key: $out/id_ed25519"
  fi
fi
cat > "$out/order.yaml" <<ORDER
# A sample VPS order.
hostname: demo-vps
instance_id: demo-0001
admin_user: admin
ssh_keys:
  - "$(head -n1 "$key")"
allow: ["443/tcp"]
ORDER
bin/hardbake validate "$out/order.yaml"
bin/hardbake render --profile baseline --order "$out/order.yaml" -o "$out/seed" 2> "$out/render.log" || { cat "$out/render.log" >&2; exit 1; }
cat "$out/render.log" >&2
bin/hardbake iso --profile baseline --order "$out/order.yaml" -o "$out/seed.iso"
port=$(sed -n 's/.*ssh port \([0-9]*\).*/\1/p' "$out/render.log")
cat <<DONE

demo: done.
  user-data      $out/seed/user-data ($(wc -c < "$out/seed/user-data") bytes)
  meta-data      $out/seed/meta-data
  seed ISO       $out/seed.iso ($(wc -c < "$out/seed.iso") bytes, label cidata, agent on board)
  SSH after boot ssh -p $port admin@VPS_ADDRESS
Attach the ISO as a CD-ROM to a VPS booting a Debian 12/13 or Ubuntu 22.04+ cloud image.
DONE
