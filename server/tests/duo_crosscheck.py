"""Cross-check of deskproof's Duo simulator with Duo's official Python client (duo_client).

Run by tests/duo_crosscheck.rs. Talks plain HTTP to the simulator, signs with the library's
own code, and prints one JSON summary line. Exits non-zero with a message on any mismatch.
"""
import argparse
import base64
import email.utils
import hashlib
import http.client
import json
import sys
import time
import urllib.request

import duo_client
from duo_client import client as duo_signing


class PlainHttp:
    """Connects over plain HTTP to host:port while signing exactly `host:port`.

    duo_client signs `self.host`; with ca_certs='HTTP' and a separate port it would sign the bare
    host but send `Host: host:port`. Keeping `host:port` as the signed host keeps the simulator
    strict (signed host == Host header).
    """

    def _connect(self):
        addr, port = self.host.rsplit(":", 1)
        conn = http.client.HTTPConnection(addr, int(port))
        conn.timeout = self.timeout
        return conn


class Auth(PlainHttp, duo_client.Auth):
    pass


class Admin(PlainHttp, duo_client.Admin):
    pass


def fail(msg):
    print(f"CROSSCHECK FAILED: {msg}", file=sys.stderr)
    sys.exit(1)


def make(cls, ikey, skey, host, sig_version, digest):
    kwargs = {"ca_certs": "HTTP", "sig_version": sig_version}
    if digest:
        kwargs["digestmod"] = getattr(hashlib, digest)
    return cls(ikey=ikey, skey=skey, host=host, **kwargs)


def raw_call(ikey, skey, host, method, path, params, date, tamper):
    """Signs with duo_client's own sign(), optionally breaks it, and sends by hand."""
    auth = duo_signing.sign(ikey, skey, method, host, path, date, 2,
                            duo_signing.normalize_params(params), digestmod=hashlib.sha512)
    if tamper:
        token = base64.b64decode(auth.split(" ", 1)[1]).decode()
        ikey_part, sig = token.split(":", 1)
        sig = ("0" if sig[0] != "0" else "1") + sig[1:]
        auth = "Basic " + base64.b64encode(f"{ikey_part}:{sig}".encode()).decode()
    query = duo_signing.canon_params(duo_signing.normalize_params(params))
    addr, port = host.rsplit(":", 1)
    conn = http.client.HTTPConnection(addr, int(port), timeout=10)
    conn.request(method, path + ("?" + query if query else ""),
                 headers={"Authorization": auth, "Date": date})
    resp = conn.getresponse()
    body = json.loads(resp.read().decode())
    return resp.status, body


def control(control_url, txid, action):
    req = urllib.request.Request(f"{control_url}/control/push/{txid}/{action}", method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", required=True, help="host:port of the simulator")
    p.add_argument("--auth-ikey", required=True)
    p.add_argument("--auth-skey", required=True)
    p.add_argument("--admin-ikey", required=True)
    p.add_argument("--admin-skey", required=True)
    p.add_argument("--username", required=True)
    p.add_argument("--sig-version", type=int, default=5)
    p.add_argument("--digest", default=None, choices=[None, "sha1", "sha512"])
    p.add_argument("--page-limit", type=int, default=2)
    a = p.parse_args()
    control_url = f"http://{a.host}"

    admin = make(Admin, a.admin_ikey, a.admin_skey, a.host, a.sig_version, a.digest)
    auth = make(Auth, a.auth_ikey, a.auth_skey, a.host, a.sig_version, a.digest)

    # Several pages: duo_client follows metadata.next_offset with a fresh date per page.
    admin.paging_limit = a.page_limit
    users = list(admin.get_users_iterator())
    usernames = sorted(u["username"] for u in users)

    pre = auth.preauth(username=a.username)
    if pre.get("result") != "auth":
        fail(f"preauth result {pre!r}")
    device = next((d["device"] for d in pre["devices"] if "push" in d["capabilities"]), None)
    if device is None:
        fail("no push device in preauth")

    started = auth.auth(factor="push", username=a.username, device=device, async_txn=True,
                        type="Ticket confirmation",
                        pushinfo="ticket=INC-1234&summary=Reset%20password")
    txid = started["txid"]
    first = auth.auth_status(txid)
    control(control_url, txid, "approve")
    final = auth.auth_status(txid)
    if not final.get("success") or final.get("status") != "allow":
        fail(f"auth_status after approval {final!r}")

    # One character of the signature changed: 40103. A date ten minutes off: 40105.
    now = email.utils.formatdate()
    ok_status, _ = raw_call(a.admin_ikey, a.admin_skey, a.host, "GET", "/admin/v1/users",
                            {"limit": "1"}, now, tamper=False)
    bad_sig = raw_call(a.admin_ikey, a.admin_skey, a.host, "GET", "/admin/v1/users",
                       {"limit": "1"}, now, tamper=True)
    skewed = raw_call(a.admin_ikey, a.admin_skey, a.host, "GET", "/admin/v1/users",
                      {"limit": "1"}, email.utils.formatdate(time.time() - 600), tamper=False)

    print(json.dumps({
        "sig_version": a.sig_version,
        "digest": a.digest,
        "usernames": usernames,
        "preauth_result": pre["result"],
        "first_status": first.get("status"),
        "final_status": final.get("status"),
        "final_success": final.get("success"),
        "untampered_http": ok_status,
        "tampered": [bad_sig[0], bad_sig[1].get("code")],
        "skewed": [skewed[0], skewed[1].get("code")],
    }))


if __name__ == "__main__":
    main()
