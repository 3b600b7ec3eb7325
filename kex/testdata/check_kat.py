#!/usr/bin/env python3
# Independent check of docs/PROTOCOL.md §11 against kex/testdata/kat.json:
# message layouts, fingerprint, Ed25519 transcript signature, transcript hash,
# HKDF key schedule, ratchet, nonce layout and AES-GCM frames, re-implemented
# with Python's hashlib/hmac and the 'cryptography' package (not Go).
# ML-KEM itself is cross-checked in Go against crypto/mlkem (TestKEMAgainstStdlib).
# Usage: python3 kex/testdata/check_kat.py kex/testdata/kat.json
import json, hashlib, hmac, struct, sys
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

def hkdf_extract(salt, ikm): return hmac.new(salt, ikm, hashlib.sha256).digest()
def hkdf_expand(prk, info, n):
    out, t, i = b'', b'', 1
    while len(out) < n:
        t = hmac.new(prk, t + info + bytes([i]), hashlib.sha256).digest(); out += t; i += 1
    return out[:n]
lp = lambda b: struct.pack('<I', len(b)) + b
PK = {128: 800, 192: 1184, 256: 1568}; CT = {128: 768, 192: 1088, 256: 1568}
IDPK = {0: 0, 1: 32, 2: 1312, 3: 1952, 4: 2592}; SIG = {0: 0, 1: 64, 2: 2420, 3: 3309, 4: 4627}
for v in json.load(open(sys.argv[1])):
    h = {k: bytes.fromhex(x) for k, x in v.items() if isinstance(x, str) and k not in ('name','identity','server_rand','client_rand','fingerprint')}
    size = v['key_size']; sh = h['server_hello']; cf = h['client_finish']
    # server hello layout
    assert sh[0] == 1 and sh[1] == 1 and struct.unpack('<H', sh[2:4])[0] == size
    n = struct.unpack('<H', sh[4:6])[0]; assert n == PK[size]
    off = 6 + n; alg = sh[off]; m = struct.unpack('<H', sh[off+1:off+3])[0]; assert m == IDPK[alg]
    idkey = sh[off+3:off+3+m]; off += 3 + m; tbs = sh[:off]
    s = struct.unpack('<H', sh[off:off+2])[0]; assert s == SIG[alg]; sig = sh[off+2:]; assert len(sig) == s
    # client finish layout
    assert cf[0] == 2 and cf[1] == 1 and struct.unpack('<H', cf[2:4])[0] == CT[size] == len(cf) - 4
    # signature
    if alg:
        assert v['fingerprint'] == 'sha256:' + hashlib.sha256(bytes([alg]) + idkey).hexdigest()
        th_sig = hashlib.sha256(b'atedb-kex-v1 transcript' + lp(h['hello']) + lp(h['hello_ack']) + lp(tbs)).digest()
        if alg == 1:
            Ed25519PublicKey.from_public_bytes(idkey).verify(sig, b'atedb-kex-v1 server signature' + th_sig)
    # transcript and schedule
    th = hashlib.sha256(b'atedb-kex-v1 transcript' + lp(h['hello']) + lp(h['hello_ack']) + lp(sh) + lp(cf)).digest()
    assert th == h['transcript_hash']
    prk = hkdf_extract(th, h['shared_secret'])
    c2s = hkdf_expand(prk, b'atedb-kex-v1 c2s', 32); s2c = hkdf_expand(prk, b'atedb-kex-v1 s2c', 32)
    assert c2s == h['c2s_secret_0'] and s2c == h['s2c_secret_0']
    L = size // 8
    kc = hkdf_expand(c2s, b'atedb-kex-v1 key', L); ks = hkdf_expand(s2c, b'atedb-kex-v1 key', L)
    assert kc == h['c2s_key_0'] and ks == h['s2c_key_0']
    c2s1 = hkdf_expand(c2s, b'atedb-kex-v1 ratchet', 32)
    assert c2s1 == h['c2s_secret_1'] and hkdf_expand(c2s1, b'atedb-kex-v1 key', L) == h['c2s_key_1']
    nonce = lambda c: b'\0\0\0\0' + struct.pack('<Q', c)
    assert AESGCM(kc).decrypt(nonce(0), h['client_confirm'], None) == b'\x03'
    assert AESGCM(ks).decrypt(nonce(0), h['server_confirm'], None) == b'\x04'
    assert AESGCM(kc).decrypt(nonce(1), h['c2s_frame_1'], None) == b'ping'
    assert AESGCM(ks).decrypt(nonce(1), h['s2c_frame_1'], None) == b'pong'
    print('ok', v['name'])
