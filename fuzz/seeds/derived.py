#!/usr/bin/env python3
"""Writes the seeds derived from the signed checkpoint generate.sh copied
(witness bodies, round-trip inputs) and the JWT seeds (an Ed25519, an RSA
and an EC key; tokens with well-formed signatures that do not verify)."""
import base64, json, os

corpus = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "corpus")
os.chdir(corpus)
for directory in ("witness", "roundtrip", "jwt"):
    os.makedirs(directory, exist_ok=True)


def w(path, data):
    open(path, "wb").write(data if isinstance(data, bytes) else data.encode())


cp = open("checkpoint/signed").read()
hash_line = lambda byte: base64.b64encode(bytes([byte]) * 32).decode()
w("witness/add-checkpoint-old-0", b"\x00" + ("old 0\n\n" + cp).encode())
w("witness/add-checkpoint-old-7", b"\x00" + ("old 7\n" + hash_line(0x11) + "\n" + hash_line(0x22) + "\n\n" + cp).encode())
sig = [line for line in cp.split("\n") if line.startswith("\u2014 ")][0]
w("witness/size-body", b"\x0115\n")
w("witness/signatures", b"\x01" + (sig + "\n").encode())
w("witness/cosignature-line", b"\x02" + sig.encode())
w("witness/note", b"\x03" + cp.encode())
w("roundtrip/tlog-proof", b"t" + open("tlog_proof/event-0", "rb").read())
w("roundtrip/add-checkpoint", b"w" + ("old 0\n\n" + cp).encode())
w("roundtrip/signature-line", b"s" + sig.encode())
w("roundtrip/vkey", b"k" + open("log.vkey", "rb").read().strip())
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
jwks = json.dumps({"keys": [
    {"kty": "OKP", "crv": "Ed25519", "kid": "k1", "alg": "EdDSA", "use": "sig", "x": b64(b"\x01" * 32)},
    {"kty": "RSA", "kid": "r1", "alg": "RS256", "n": b64(b"\xc1" * 256), "e": "AQAB"},
    {"kty": "EC", "crv": "P-256", "kid": "e1", "x": b64(b"\x02" * 32), "y": b64(b"\x03" * 32)}]})
claims = b64(json.dumps({"iss": "https://idp.example", "sub": "alice", "aud": "custody",
                         "exp": 1796036560, "iat": 1796032960, "nonce": "n"}).encode())
header = b64(json.dumps({"alg": "EdDSA", "kid": "k1", "typ": "JWT"}).encode())
w("jwt/eddsa", jwks + "\n" + header + "." + claims + "." + b64(b"\x05" * 64))
header = b64(json.dumps({"alg": "RS256", "kid": "r1"}).encode())
w("jwt/rs256", jwks + "\n" + header + "." + claims + "." + b64(b"\x06" * 256))
print("derived seeds written")
