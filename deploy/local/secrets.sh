#!/usr/bin/env bash
# Local certificates and passwords for the secured services (kafka-secure.sh, redis-secure.sh), made
# with openssl into an ignored folder and never committed. Each is made once and reused.
#
#   deploy/local/secrets.sh certs         a CA and a server certificate for 127.0.0.1 / localhost
#   deploy/local/secrets.sh password NAME  print the path of NAME's password file (made if missing)
#   deploy/local/secrets.sh dir           print the folder
#
# Folder: <LW_RUN_DIR or <repo>/.run>/secure: ca.pem (what clients trust), ca.key, server.pem,
# server.key, server-keystore.pem (key + chain, Kafka's PEM keystore), passwords/NAME (mode 600).
# Certificates within a day of expiry are made again (with a new CA: clients must reload ca.pem).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
dir=${LW_RUN_DIR:-$repo/.run}/secure
days=365

die() { echo "secrets: $*" >&2; exit 1; }

valid() { [[ -f $1 ]] && openssl x509 -in "$1" -noout -checkend 86400 >/dev/null 2>&1; }

certs() {
  command -v openssl >/dev/null || die "openssl is not installed: apt-get install openssl"
  mkdir -p "$dir"
  chmod 700 "$dir"
  if valid "$dir/ca.pem" && valid "$dir/server.pem" \
      && openssl verify -CAfile "$dir/ca.pem" "$dir/server.pem" >/dev/null 2>&1; then
    return 0
  fi
  local tmp; tmp=$(mktemp -d "$dir/.new.XXXXXX")
  (
    umask 077
    cd "$tmp"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days "$days" \
      -subj "/CN=linewatch local CA" -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    # PKCS#8 (BEGIN PRIVATE KEY): the form Kafka's PEM keystore reads.
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out server.key 2>/dev/null
    openssl req -new -key server.key -subj "/CN=linewatch-broker" -out server.csr
    # clientAuth too: the broker presents this certificate to its own controller listener (mTLS).
    # Names: loopback for deploy/local, the compose services `kafka` and `redis` for deploy/compose.
    printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
      "extendedKeyUsage=serverAuth,clientAuth" "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kafka,DNS:redis" >server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days "$days" \
      -extfile server.ext -out server.pem 2>/dev/null
    cat server.key server.pem >server-keystore.pem
    rm -f server.csr server.ext ca.srl
    chmod 644 ca.pem server.pem
  ) || { rm -rf "$tmp"; die "openssl failed to make the certificates"; }
  mv -f "$tmp"/* "$dir/" && rmdir "$tmp"
  echo "secrets: new CA and server certificate in $dir (clients trust $dir/ca.pem)"
}

password() {
  local name=${1:?password NAME}
  [[ $name =~ ^[a-z0-9-]+$ ]] || die "password names are lower-case letters, digits and '-': $name"
  mkdir -p "$dir/passwords"
  chmod 700 "$dir" "$dir/passwords"
  local file=$dir/passwords/$name
  if [[ ! -s $file ]]; then
    # Hex only: the value goes into Kafka's --add-scram and JAAS syntax without quoting trouble.
    # No newline: Kafka's DirectoryConfigProvider reads the file as it is.
    (umask 077 && openssl rand -hex 24 | tr -d '\n' >"$file.tmp" && mv "$file.tmp" "$file")
  fi
  echo "$file"
}

case "${1:-}" in
  certs) certs ;;
  password) password "${2:-}" ;;
  dir) echo "$dir" ;;
  *) echo "usage: $0 certs | password NAME | dir" >&2; exit 2 ;;
esac
