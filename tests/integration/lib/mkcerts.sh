#!/bin/bash
# SPDX-License-Identifier: MIT
#
# mkcerts.sh DIR: test certificates for the TLS tests, made with the openssl
# command line into DIR (created if needed). Never commit what it makes:
# tests run it into a temporary directory.
#
# Every certificate is DIR/NAME.crt with its key in DIR/NAME.key (EC P-256,
# SHA-256 signatures):
#
#   ca             the test CA (CN=vmmd test CA)
#   server         CN=localhost, SAN DNS:localhost, IP:127.0.0.1; serverAuth
#   admin1         CN=admin1, clientAuth (the clients below all are, unless
#   operator-a     CN=operator-a            said otherwise)
#   operator-b     CN=operator-b
#   viewer1        CN=viewer1
#   unknown1       CN=unknown1 (in no policy)
#   expired        CN=admin1, valid only in January 2020
#   notyet         CN=admin1, valid only from 2099
#   foreign        CN=admin1, signed by another CA (otherca.crt, otherca.key)
#   serveronly     CN=serveronly, serverAuth only: no good as a client
#   noeku          CN=noeku1, no extended key usage at all
#   sanonly        no CN; SAN URI:spiffe://vmmd.test/sanonly,
#                  email:sanonly@example.com, DNS:sanonly.example
#
# The expired, notyet and foreign certificates carry the admin's CN so that
# a refusal can only be about their dates or their issuer.
#
# Idempotent: a second run into a complete DIR does nothing unless the
# certificates are about to expire. Exit status 77 when openssl is missing.
set -euo pipefail

if [ $# -ne 1 ] || [ -z "$1" ]; then
	echo "usage: mkcerts.sh DIR" >&2
	exit 2
fi
dir=$1
if ! command -v openssl >/dev/null 2>&1; then
	echo "mkcerts.sh: openssl not found (apt-get install openssl)" >&2
	exit 77
fi

clients="admin1 operator-a operator-b viewer1 unknown1"
names="ca server $clients expired notyet otherca foreign serveronly noeku sanonly"
stamp_text="mkcerts v1: $names"

mkdir -p "$dir"
stamp=$dir/.mkcerts-done
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$stamp_text" ]; then
	complete=1
	for n in $names; do
		[ -s "$dir/$n.crt" ] && [ -s "$dir/$n.key" ] || complete=0
	done
	# Regenerate a day before the short-lived leaves expire.
	if [ $complete = 1 ] &&
	    openssl x509 -checkend 86400 -noout -in "$dir/server.crt" >/dev/null; then
		exit 0
	fi
fi

umask 077
tmp=$(mktemp -d "$dir/.mkcerts.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# One minimal configuration, so that nothing depends on the system's
# openssl.cnf (Debian's adds extensions of its own to `req -x509`).
cat >"$tmp/openssl.cnf" <<EOF
[ req ]
distinguished_name = req_dn
prompt = no
[ req_dn ]
CN = unused

[ v3_ca ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[ leaf ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

[ server ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1

[ client ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
extendedKeyUsage = clientAuth

[ serveronly ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
extendedKeyUsage = serverAuth

[ sanonly ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
extendedKeyUsage = clientAuth
subjectAltName = URI:spiffe://vmmd.test/sanonly, email:sanonly@example.com, DNS:sanonly.example

# For \`openssl ca\`, the one way OpenSSL 3.0 alone sets arbitrary dates.
[ ca ]
default_ca = ca_dated
[ ca_dated ]
database = $tmp/index.txt
new_certs_dir = $tmp
serial = $tmp/serial
default_md = sha256
policy = ca_policy
unique_subject = no
copy_extensions = none
email_in_dn = no
[ ca_policy ]
commonName = supplied
EOF
: >"$tmp/index.txt"
openssl rand -hex 16 >"$tmp/serial"

cnf=$tmp/openssl.cnf

newkey() {
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
		-out "$tmp/$1.key"
}

newca() {	# newca NAME CN
	newkey "$1"
	openssl req -config "$cnf" -new -x509 -key "$tmp/$1.key" -subj "/CN=$2" \
		-days 3650 -sha256 -extensions v3_ca -set_serial "0x$(openssl rand -hex 16)" \
		-out "$tmp/$1.crt"
}

csr() {		# csr NAME SUBJECT
	newkey "$1"
	openssl req -config "$cnf" -new -key "$tmp/$1.key" -subj "$2" \
		-out "$tmp/$1.csr"
}

sign() {	# sign NAME CA SECTION: a leaf valid from now for 825 days
	openssl x509 -req -in "$tmp/$1.csr" -CA "$tmp/$2.crt" \
		-CAkey "$tmp/$2.key" -set_serial "0x$(openssl rand -hex 16)" \
		-days 825 -sha256 -extfile "$cnf" -extensions "$3" \
		-out "$tmp/$1.crt" 2>/dev/null
}

sign_dated() {	# sign_dated NAME START END: a clientAuth leaf with fixed dates
	openssl ca -batch -config "$cnf" -cert "$tmp/ca.crt" \
		-keyfile "$tmp/ca.key" -in "$tmp/$1.csr" -out "$tmp/$1.crt" \
		-startdate "$2" -enddate "$3" -extfile "$cnf" -extensions client \
		-notext 2>/dev/null
}

newca ca "vmmd test CA"
newca otherca "vmmd other test CA"

csr server "/CN=localhost"
sign server ca server
for n in $clients; do
	csr "$n" "/CN=$n"
	sign "$n" ca client
done
csr expired "/CN=admin1"
sign_dated expired 20200101000000Z 20200201000000Z
csr notyet "/CN=admin1"
sign_dated notyet 20990101000000Z 20991231000000Z
csr foreign "/CN=admin1"
sign foreign otherca client
csr serveronly "/CN=serveronly"
sign serveronly ca serveronly
csr noeku "/CN=noeku1"
sign noeku ca leaf
# An empty subject needs an explicit empty -subj and a SAN to be valid.
csr sanonly "/"
sign sanonly ca sanonly

for n in $names; do
	chmod 0644 "$tmp/$n.crt"
	chmod 0600 "$tmp/$n.key"
	mv -f "$tmp/$n.crt" "$tmp/$n.key" "$dir/"
done
echo "$stamp_text" >"$stamp"
