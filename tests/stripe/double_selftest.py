#!/usr/bin/env python3
"""double_selftest.py -- the Stripe test double's webhook side and ledger, checked on their own (Python 3 stdlib).

The adapter's tests (test_stripe.c) cover the double's API and idempotency; the end-to-end payment tests rely
on its webhook knobs, checked here: every event signed once per secret (each v1 verified here with hmac),
fresh t; duplicate -> the same event id twice; delay_ms -> not before; lose -> never, listed as lost; reorder ->
after the next event; created_offset_s -> `created` in the past, t fresh; a 500 from the receiver -> retried;
/__double/deliver flushes a long delay; the refund ledger refuses more than was captured; the same
idempotency key sent by 8 threads at once executes once (the others get 409 or the replay).
Starts its own double (--port 0 --port-file) and receiver on 127.0.0.1; exits non-zero on the first failure.
usage: double_selftest.py [PATH_TO_stripe_double.py]
"""
import base64
import hashlib
import hmac
import http.server
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
DOUBLE = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "stripe_double.py")
KEY = "sk_test_selftest"
SECRETS = ["whsec_old", "whsec_new"]
GOT = []            # (time, event dict, header)
FAIL_FIRST = set()  # event ids answered 500 once
LOCK = threading.Lock()


class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        ev = json.loads(body)
        hdr = self.headers["Stripe-Signature"]
        parts = dict(p.split("=", 1) for p in hdr.split(",") if p.startswith("t="))
        v1 = [p[3:] for p in hdr.split(",") if p.startswith("v1=")]
        for s, v in zip(SECRETS, v1):
            want = hmac.new(s.encode(), parts["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
            assert hmac.compare_digest(want, v), "bad v1 for %s" % s
        assert len(v1) == len(SECRETS), hdr
        assert abs(int(parts["t"]) - time.time()) < 5, "stale t"
        status = 200
        with LOCK:
            if ev["data"]["object"].get("metadata", {}).get("payment_id") == "flaky" and ev["id"] not in FAIL_FIRST:
                FAIL_FIRST.add(ev["id"])
                status = 500
            else:
                GOT.append((time.time(), ev, hdr))
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *a):
        pass


def call(base, method, path, body=None, form=False):
    data = None
    headers = {}
    if body is not None:
        data = body.encode() if form else json.dumps(body).encode()
    if form:
        headers["Authorization"] = "Basic " + base64.b64encode((KEY + ":").encode()).decode()
        headers["Idempotency-Key"] = "k-%s-%s" % (path, body)
    req = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def intent(base, payment, amount=1000):
    st, it = call(base, "POST", "/v1/payment_intents",
                  "amount=%d&currency=eur&metadata[payment_id]=%s" % (amount, payment), form=True)
    assert st == 200, it
    return it["id"]


def wait_for(pred, secs=10.0):
    end = time.time() + secs
    while time.time() < end:
        with LOCK:
            if pred():
                return True
        time.sleep(0.05)
    return False


def events_for(payment):
    return [(t, e) for t, e, _ in GOT if e["data"]["object"].get("metadata", {}).get("payment_id") == payment]


def same_key_race(base, rounds=40, threads=8):
    """Each round: `threads` creates with one key released together. Stripe runs the first and answers the
    others 409 (still running) or the saved answer, so one intent per key. Returns the failures."""
    bad = []
    for n in range(rounds):
        gate = threading.Barrier(threads)
        got = []

        def one():
            gate.wait()
            got.append(call(base, "POST", "/v1/payment_intents", "amount=100&currency=eur&metadata[payment_id]=race%d" % n,
                            form=True))
        ts = [threading.Thread(target=one) for _ in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        ids = {r["id"] for st, r in got if st == 200}
        if len(ids) != 1 or any(st not in (200, 409) for st, _ in got):
            bad.append((n, sorted(st for st, _ in got), ids))
    st, s = call(base, "GET", "/__double/state")
    made = sum(1 for v in s["intents"].values() if v["metadata"].get("payment_id", "").startswith("race"))
    if made != rounds:
        bad.append(("intents", made, rounds))
    return bad


def main():
    rcv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=rcv.serve_forever, daemon=True).start()
    tmp = tempfile.mkdtemp()
    pf = os.path.join(tmp, "port")
    proc = subprocess.Popen([sys.executable, DOUBLE, "--port", "0", "--port-file", pf, "--key", KEY,
                             "--log", os.path.join(tmp, "log")], stdout=subprocess.DEVNULL)
    try:
        for _ in range(500):
            if os.path.exists(pf):
                break
            time.sleep(0.02)
        base = "http://127.0.0.1:%s" % open(pf).read().strip()
        call(base, "POST", "/__double/config",
             {"webhook_url": "http://127.0.0.1:%d/hook" % rcv.server_address[1], "secrets": SECRETS,
              "webhook_by_payment": {"dup": {"duplicate": 2}, "slow": {"delay_ms": 800},
                                     "gone": {"lose": True}, "first": {"reorder": True},
                                     "old": {"created_offset_s": 3 * 86400}, "held": {"delay_ms": 60000}}})
        t0 = time.time()
        for p in ("dup", "slow", "gone", "old", "flaky", "held"):
            st, _ = call(base, "POST", "/v1/payment_intents/%s/confirm" % intent(base, p),
                         "payment_method=pm_card_visa", form=True)
            assert st == 200
        a = intent(base, "first")
        b = intent(base, "second")
        call(base, "POST", "/v1/payment_intents/%s/confirm" % a, "payment_method=pm_card_visa", form=True)
        st, _ = call(base, "POST", "/v1/payment_intents/%s/confirm" % b, "payment_method=pm_card_chargeDeclined",
                     form=True)
        assert st == 402, st
        assert wait_for(lambda: len(events_for("dup")) == 3 and events_for("slow") and events_for("first")
                        and events_for("old") and events_for("flaky")), GOT
        assert len({e["id"] for _, e in events_for("dup")}) == 1, "duplicates are one event id"
        assert events_for("slow")[0][0] - t0 >= 0.75, "delay_ms not honoured"
        assert events_for("first")[0][0] >= events_for("second")[0][0], "reorder: first came first"
        assert events_for("second")[0][1]["type"] == "payment_intent.payment_failed"
        old = events_for("old")[0][1]
        assert time.time() - old["created"] >= 3 * 86400 - 5, "created_offset_s"
        st, s = call(base, "GET", "/__double/state")
        assert any(d["payment_id"] == "flaky" and d["status"] == 500 for d in s["deliveries"]), "no 500 seen"
        assert len(s["lost"]) == 1 and not events_for("gone"), "lose"
        assert not events_for("held")
        st, r = call(base, "POST", "/__double/deliver", {})
        assert r["sent"] >= 1
        assert wait_for(lambda: events_for("held"), 5), "deliver did not flush"
        # ledger: 1000 captured on "dup"; 600 + 400 refunded, then nothing left
        pi = s["intents"] and [i for i, v in s["intents"].items() if v["metadata"].get("payment_id") == "dup"][0]
        st, _ = call(base, "POST", "/v1/refunds", "payment_intent=%s&amount=600" % pi, form=True)
        assert st == 200
        st, e = call(base, "POST", "/v1/refunds", "payment_intent=%s&amount=500" % pi, form=True)
        assert st == 400 and e["error"]["code"] == "amount_too_large", e
        st, _ = call(base, "POST", "/v1/refunds", "payment_intent=%s" % pi, form=True)
        assert st == 200
        st, e = call(base, "POST", "/v1/refunds", "payment_intent=%s&reason=duplicate" % pi, form=True)
        assert st == 400 and e["error"]["code"] == "charge_already_refunded", e
        st, s = call(base, "GET", "/__double/state")
        assert s["refunded"][pi] == 1000 and s["captured"][pi] == 1000
        bad = same_key_race(base)
        assert not bad, "one key executed more than once: %s" % bad[:5]
        print("double_selftest: webhooks (signatures, duplicate, delay, lose, reorder, old created, retry, "
              "deliver), ledger and concurrent idempotency keys OK")
        return 0
    finally:
        proc.terminate()
        proc.wait(5)


if __name__ == "__main__":
    sys.exit(main())
