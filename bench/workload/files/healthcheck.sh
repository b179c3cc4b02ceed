#!/bin/sh
# exits 0 when the bench service's settings file names a port
set -eu
dir=$(dirname "$0")/..
grep -q '^listen_port=[0-9][0-9]*$' "$dir/etc/settings.conf"
