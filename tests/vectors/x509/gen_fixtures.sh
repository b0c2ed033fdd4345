#!/bin/sh
# Generate the x509 unit-test fixtures into OUTDIR (an empty directory):
#   gen_fixtures.sh OUTDIR
# Dates are explicit (openssl ca -startdate/-enddate) so the tests can pick
# `now` freely. Run by tests/unit/test_x509.c at test time; needs only the
# openssl command-line tool. All output and errors go to OUTDIR/gen.log.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
cnf="$here/ca.cnf"
out=$1
cd "$out"
exec 3>&2 >gen.log 2>&1
trap 'rc=$?; [ $rc -eq 0 ] || { echo "gen_fixtures.sh failed (rc $rc), see $out/gen.log" >&3; tail -n 20 gen.log >&3; }' EXIT
set -x
export KCA_DIR=.   # ca.cnf reads it; each openssl ca call sets its own

ec_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:"$2" -out "$1.key"; }
rsa_key() { openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:"$2" -out "$1.key"; }

# cadir NAME : the openssl ca database for issuing with NAME.pem / NAME.key
cadir() {
	mkdir -p "$1.d/newcerts"
	: >"$1.d/index.txt"
	echo 1000 >"$1.d/serial"
}

# mkca NAME CN START END : self-signed CA (EC P-256) in NAME.pem / NAME.key
mkca() {
	cadir "$1"
	ec_key "$1" P-256
	openssl req -config "$cnf" -new -key "$1.key" -subj "/CN=$2/O=Kinko Test" -out "$1.csr"
	KCA_DIR="$1.d" openssl ca -batch -config "$cnf" -selfsign -keyfile "$1.key" -in "$1.csr" \
		-startdate "$3" -enddate "$4" -extensions v3_ca -notext -out "$1.pem"
}

# issue CA NAME CN START END EXT : certificate for NAME.key signed by CA
issue() {
	openssl req -config "$cnf" -new -utf8 -key "$2.key" -subj "/CN=$3/O=Kinko Test" -out "$2.csr"
	KCA_DIR="$1.d" openssl ca -batch -config "$cnf" -utf8 -cert "$1.pem" -keyfile "$1.key" \
		-in "$2.csr" -startdate "$4" -enddate "$5" -extensions "$6" -notext -out "$2.pem"
}

V0=20240101000000Z
V1=20300101000000Z

mkca ca "Kinko Test CA" 20200101000000Z 20400101000000Z
mkca other "Kinko Other CA" 20200101000000Z 20400101000000Z
# same subject name as the real CA, different key: signature does not verify
mkca evil "Kinko Test CA" 20200101000000Z 20400101000000Z
# a CA that expires before the certificates it issued
mkca short "Kinko Short CA" 20200101000000Z 20250101000000Z

# an intermediate CA below the CA, and a certificate it issued
ec_key inter P-256
cadir inter
issue ca inter "Kinko Intermediate CA" 20200101000000Z 20400101000000Z v3_ca
ec_key interleaf P-256
issue inter interleaf "ivan-intermediate" $V0 $V1 v3_user

rsa_key rsa 2048
issue ca rsa "Alice Ångström" $V0 $V1 v3_user
ec_key ec P-256
issue ca ec "bob-ec" $V0 $V1 v3_user
ec_key p384 P-384
issue ca p384 "carol-p384" $V0 $V1 v3_user
ec_key expired P-256
issue ca expired "dave-expired" 20200101000000Z 20210101000000Z v3_user
ec_key notyet P-256
issue ca notyet "erin-notyet" 20350101000000Z 20360101000000Z v3_user
ec_key odd P-256
issue ca odd "frank-odd-times" 20240315123456Z 20290620083000Z v3_user
ec_key othercert P-256
issue other othercert "mallory-other" $V0 $V1 v3_user
# issued with an end-user certificate (CA:false) as the issuer
cadir ec
ec_key byleaf P-256
issue ec byleaf "mallory-byleaf" $V0 $V1 v3_user
ec_key evilcert P-256
issue evil evilcert "mallory-evil" $V0 $V1 v3_user
ec_key shortleaf P-256
issue short shortleaf "oscar-short" $V0 $V1 v3_user
ec_key ka P-256
issue ca ka "peggy-keyagreement" $V0 $V1 v3_user_ka
ec_key badku P-256
issue ca badku "trent-nonrepudiation" $V0 $V1 v3_user_badku
ec_key noku P-256
issue ca noku "victor-noku" $V0 $V1 v3_user_noku
# a common name with terminal control characters (ESC, TAB, C1 NEL U+0085)
ec_key esc P-256
issue ca esc "$(printf 'evil\033[31mred\tx\302\205y')" $V0 $V1 v3_user
# no common name at all
ec_key nocn P-256
openssl req -config "$cnf" -new -key nocn.key -subj "/O=Kinko Test/OU=No Name" -out nocn.csr
KCA_DIR=ca.d openssl ca -batch -config "$cnf" -policy pol_nocn -cert ca.pem -keyfile ca.key \
	-in nocn.csr -startdate $V0 -enddate $V1 -extensions v3_user -notext -out nocn.pem
rsa_key rsa1024 1024
issue ca rsa1024 "walter-rsa1024" $V0 $V1 v3_user

# X25519 cannot sign its own request: issue it with -force_pubkey (dates
# relative to the system clock; the tests only seal/open with it)
openssl genpkey -algorithm X25519 -out x25519.key
openssl pkey -in x25519.key -pubout -out x25519.pub
openssl x509 -req -in ec.csr -CA ca.pem -CAkey ca.key -force_pubkey x25519.pub \
	-set_serial 7777 -days 3650 -out x25519.pem
# Ed25519: a valid certificate whose key cannot receive a sealed secret
openssl genpkey -algorithm ED25519 -out ed25519.key
openssl pkey -in ed25519.key -pubout -out ed25519.pub
openssl x509 -req -in ec.csr -CA ca.pem -CAkey ca.key -force_pubkey ed25519.pub \
	-set_serial 7778 -days 3650 -out ed25519.pem

# wrong keys of the right types
rsa_key rsa_wrong 2048
ec_key ec_wrong P-256

# key and certificate containers
openssl x509 -in rsa.pem -outform DER -out rsa.der
openssl pkey -in ec.key -outform DER -out ec.key.der
openssl pkcs8 -topk8 -in ec.key -outform DER -v2 aes-256-cbc -passout pass:pem-secret -out ec_enc.key.der
openssl pkcs12 -export -inkey rsa.key -in rsa.pem -passout pass:p12-secret -out rsa.p12
openssl pkcs12 -export -inkey ec.key -in ec.pem -passout pass:p12-secret -out ec.p12
openssl pkcs12 -export -inkey p384.key -in p384.pem -passout pass: -out p384_nopass.p12
openssl pkey -in ec.key -aes256 -passout pass:pem-secret -out ec_enc.key
openssl pkey -in p384.key -aes256 -passout pass:pem-secret -out p384_enc.key
openssl rsa -in rsa.key -aes256 -traditional -passout pass:pem-secret -out rsa_enc_trad.key
openssl ec -in ec.key -out ec_trad.key
cat ec.pem ec.key >ec_combined.pem
openssl pkey -in ec.key -pubout -out ec.pub
: >empty.key
touch done
