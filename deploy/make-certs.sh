#!/usr/bin/env bash
# A private certificate authority and one server certificate, for the broker's TLS listener and
# the HJ 212 gateway's (docs/deployment.md#tls). The tests use this same script.
#
#   deploy/make-certs.sh DIR NAME [NAME...]
#
# NAME is each host name or IP address stations use to reach the server. Writes into DIR:
#   ca.crt      the CA certificate: give it to every station and data logger, and to parkwatch
#               (PARKWATCH_MQTT_CA_FILE) when the broker's certificate comes from this CA
#   ca.key      the CA's key: keep it off the server, it signs certificates
#   server.crt  the server certificate (valid 825 days), and server.key its key (mode 600)
# An existing ca.key is reused, so a renewed server certificate keeps the stations' trust.
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "usage: $0 DIR NAME [NAME...]" >&2
    exit 2
fi
dir=$1
shift
mkdir -p "$dir"
umask 077
san=""
for name in "$@"; do
    if [[ $name =~ ^[0-9.]+$ || $name == *:* ]]; then kind=IP; else kind=DNS; fi
    san="${san:+$san,}$kind:$name"
done
if [ ! -f "$dir/ca.key" ]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -sha256 -days 3650 \
        -subj "/CN=parkwatch private CA" -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
fi
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -sha256 \
    -subj "/CN=$1" -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
ext=$(mktemp)
trap 'rm -f "$ext"' EXIT
printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n' "$san" >"$ext"
openssl x509 -req -sha256 -days 825 -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
    -CAcreateserial -extfile "$ext" -out "$dir/server.crt" 2>/dev/null
rm -f "$dir/server.csr"
chmod 644 "$dir/ca.crt" "$dir/server.crt"
echo "wrote $dir/ca.crt, $dir/server.crt and $dir/server.key for: $*"
