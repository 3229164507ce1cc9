#!/usr/bin/env python3
"""stripe_double.py -- a test double of Stripe's API for our tests (Python 3 standard library only).

What it is: the parts of Stripe the Stripe adapter (adapters/stripe.c) and the end-to-end payment tests use,
served on 127.0.0.1, with Stripe's idempotency rules, a money ledger, signed webhooks with delivery faults,
and API faults. It is NOT Stripe: amounts are never converted, there are no customers, charges or balance
transactions beyond what the ledger needs, and every answer carries only the fields we read (ISSUE11.md §1).

Start:   stripe_double.py --port 0 --port-file F [--key sk_test_double] [--webhook-url URL]
                          [--secret whsec_...]... [--log FILE]
         prints "port=<P>" on stdout and writes P to F when ready. tests/fixtures/stripe.sh wraps it.

Stripe API (auth: HTTP Basic "<key>:" or "Authorization: Bearer <key>"; else 401 invalid_request_error;
bodies application/x-www-form-urlencoded, nested keys as metadata[payment_id]=42; answers JSON):
  POST /v1/payment_intents              amount (int > 0), currency (3 lower-case letters), metadata[..],
                                        automatic_payment_methods[enabled], description  -> the intent
  GET  /v1/payment_intents/{id}         -> the intent (404 resource_missing)
  POST /v1/payment_intents/{id}/confirm payment_method=pm_card_visa | pm_card_chargeDeclined |
                                        pm_card_chargeDeclinedInsufficientFunds. Auth: the key, or no auth
                                        with client_secret=<the intent's> (what Stripe.js does).
                                        visa -> succeeded (ledger captured, webhook payment_intent.succeeded);
                                        declines -> 402 card_error, intent back to requires_payment_method
                                        with last_payment_error + latest_charge, webhook payment_intent.payment_failed.
                                        On a succeeded or canceled intent: 400 payment_intent_unexpected_state.
  POST /v1/payment_intents/{id}/cancel  cancellation_reason -> canceled; succeeded/canceled intent: 400
                                        payment_intent_unexpected_state
  POST /v1/refunds                      payment_intent, amount (optional: all that is left), reason, metadata[..]
                                        -> refund object, status = config refund_status (succeeded);
                                        nothing left -> 400 charge_already_refunded; more than left -> 400
                                        amount_too_large; intent not succeeded -> 400 payment_intent_unexpected_state
  Every answer has a Request-Id header (req_<n>).

Idempotency (like Stripe, keyed by Idempotency-Key on POST):
  - first use: the key is "running" while the endpoint executes, then its status and body are saved
    (5xx included, errors raised during execution included; parameter validation errors and 401 are NOT
    saved, as Stripe);
  - same key, same method + path + parameters: the saved status and body, header Idempotent-Replayed: true;
  - same key, other parameters or path: 400 {"error":{"type":"idempotency_error",...}};
  - same key while the first is still running: 409 idempotency_error;
  - a POST without a key is served but counted ("unkeyed_posts" in the state, confirms excluded; tests
    assert 0).

Control API (no auth; JSON bodies and answers):
  POST /__double/config   merges any of:
      "key": "sk_..."                       the API key accepted
      "webhook_url": "http://127.0.0.1:P/api/v1/webhooks/stripe"  ("" = no deliveries)
      "secrets": ["whsec_a", "whsec_b"]     each event is signed once per secret (one v1 each: rotation)
      "refund_status": "succeeded" | "pending" | "failed"   (failed refunds do not count in the ledger)
      "webhook_attempts": 6                 deliveries per event before giving up (non-2xx / no answer)
      "webhook_defaults": {knobs}           knobs for every event ...
      "webhook_next": [{knobs}, ...]        ... overridden by these, consumed one per event in order ...
      "webhook_by_payment": {"<payment_id>": {knobs}}  ... overridden by these (metadata.payment_id)
          knobs: "duplicate": n (n extra copies of the same event id), "delay_ms": ms (first send later),
                 "lose": true (never sent), "reorder": true (held until the next event enqueued after it has
                 been delivered, then sent; /__double/deliver releases it too), "created_offset_s": s (the event's `created` is s seconds in the past while
                 the signature's t is fresh: "days later" in simulated time)
      "fail_next": [{fault}, ...]           APPENDED to the API fault list; "fail_clear": true empties it first
          fault: "path": fnmatch pattern ("/v1/refunds", "/v1/payment_intents/*/cancel"), "method" (any),
                 "count": n (default 1) and one of
                 "status": 500 (answer it before executing: nothing done, nothing saved; "save": true saves
                           it as the key's result like a failure during execution; "type"/"code" set the
                           error body, "should_retry": true|false adds Stripe-Should-Retry),
                 "timeout_s": 3 with "apply": true (execute and save normally, then stall timeout_s before
                           answering: the client times out after the request left = unknown outcome) or
                           "apply": false (stall, then close without executing anything),
                 "hold_s": s (execute only after s seconds with the key "running": a concurrent retry gets 409)
  GET  /__double/state    {"intents": {id: intent}, "captured": {id: n}, "refunded": {id: n},
                           "totals": {"captured": n, "refunded": n}, "refunds": [...],
                           "keys": {key: {"method","path","status","state","replays","conflicts"}},
                           "posts": {"POST /v1/payment_intents": n, ...} (requests that reached the endpoint,
                           replays excluded), "requests": [last 500 {method,path,key,status,replayed}],
                           "unkeyed_posts": n, "faults_left": [...], "deliveries": [{event,type,payment_id,
                           attempt,status,t}], "pending_deliveries": n, "held": n, "lost": [event ids]}
  POST /__double/deliver  sends every delayed or held delivery now; answers {"sent": n}
  POST /__double/emit     {"type": "payment_intent.succeeded", "intent": {fields}, "knobs": {..}}: a signed
                          event for an arbitrary intent object (e.g. a payment id we never created)
  POST /__double/expire_keys  forgets every idempotency key (Stripe prunes them after 24 h)
  POST /__double/reset    forgets intents, ledger, keys, faults, deliveries (keeps key, url, secrets)

Limits: one process, state in memory; webhook retries 0.2 s x2 up to 5 s; a delivery waits 5 s for an answer.
"""
import argparse
import base64
import fnmatch
import hashlib
import hmac
import json
import os
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class ApiError(Exception):
    def __init__(self, status, etype, code, message, param=None, save=True, extra=None):
        super().__init__(message)
        self.status, self.etype, self.code, self.message = status, etype, code, message
        self.param, self.save, self.extra = param, save, extra or {}

    def body(self):
        err = {"type": self.etype, "message": self.message}
        if self.code:
            err["code"] = self.code
            err["doc_url"] = "https://stripe.com/docs/error-codes/" + self.code.replace("_", "-")
        if self.param:
            err["param"] = self.param
        err.update(self.extra)
        return {"error": err}


class State:
    def __init__(self, key, webhook_url, secrets):
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self.key = key
        self.webhook_url = webhook_url
        self.secrets = list(secrets)
        self.refund_status = "succeeded"
        self.webhook_attempts = 6
        self.webhook_defaults = {}
        self.webhook_next = []
        self.webhook_by_payment = {}
        self.seq = 0
        self.enq = 0
        self.reset()

    def reset(self):
        self.intents = {}
        self.captured = {}
        self.refunded = {}
        self.refunds = []
        self.keys = {}
        self.posts = {}
        self.requests = []
        self.unkeyed_posts = 0
        self.faults = []
        self.queue = []      # deliveries: dict(event, body, due, attempt)
        self.held = []       # reordered deliveries waiting for the next send
        self.deliveries = []
        self.lost = []

    def next_id(self, prefix):
        self.seq += 1
        return "%s_%s%06d" % (prefix, os.urandom(6).hex(), self.seq)

    def snapshot(self):
        return {
            "intents": self.intents, "captured": self.captured, "refunded": self.refunded,
            "totals": {"captured": sum(self.captured.values()), "refunded": sum(self.refunded.values())},
            "refunds": self.refunds,
            "keys": {k: {kk: v[kk] for kk in ("method", "path", "status", "state", "replays", "conflicts")}
                     for k, v in self.keys.items()},
            "posts": self.posts, "requests": self.requests[-500:], "unkeyed_posts": self.unkeyed_posts,
            "faults_left": self.faults, "deliveries": self.deliveries[-2000:],
            "pending_deliveries": len(self.queue), "held": len(self.held), "lost": self.lost,
            "webhook_url": self.webhook_url, "secrets": len(self.secrets),
        }


STATE = None
VERBOSE = None


def log(msg):
    if VERBOSE is not None:
        VERBOSE.write("%.3f %s\n" % (time.time(), msg))
        VERBOSE.flush()


# ---- the Stripe endpoints (called with the lock NOT held; they take it) ----

def form_dict(params):
    """Flat pairs to a dict with metadata[x] as a nested dict."""
    out = {}
    for k, v in params:
        if "[" in k and k.endswith("]"):
            top, sub = k[:-1].split("[", 1)
            out.setdefault(top, {})[sub] = v
        else:
            out[k] = v
    return out


def need_int(p, name, required=True):
    if name not in p:
        if required:
            raise ApiError(400, "invalid_request_error", "parameter_missing",
                           "Missing required param: %s." % name, name, save=False)
        return None
    v = p[name]
    if not v.isdigit() or int(v) <= 0:
        raise ApiError(400, "invalid_request_error", "parameter_invalid_integer",
                       "Invalid positive integer", name, save=False)
    return int(v)


def ep_create_intent(p):
    amount = need_int(p, "amount")
    cur = p.get("currency", "")
    if len(cur) != 3 or not cur.isalpha() or cur != cur.lower():
        raise ApiError(400, "invalid_request_error", "parameter_invalid_string",
                       "Invalid currency: %s. Stripe currencies are lower case." % cur, "currency", save=False)
    meta = p.get("metadata", {})
    if not isinstance(meta, dict):
        raise ApiError(400, "invalid_request_error", "parameter_invalid_string", "Invalid metadata",
                       "metadata", save=False)
    with STATE.lock:
        pid = STATE.next_id("pi")
        intent = {
            "id": pid, "object": "payment_intent", "amount": amount, "currency": cur,
            "client_secret": "%s_secret_%s" % (pid, os.urandom(8).hex()),
            "status": "requires_payment_method", "metadata": dict(meta), "latest_charge": None,
            "last_payment_error": None, "created": int(time.time()), "livemode": False,
            "description": p.get("description"), "cancellation_reason": None,
        }
        STATE.intents[pid] = intent
        return 200, json.loads(json.dumps(intent))


def get_intent(iid):
    it = STATE.intents.get(iid)
    if it is None:
        raise ApiError(404, "invalid_request_error", "resource_missing",
                       "No such payment_intent: '%s'" % iid, "intent")
    return it


def ep_get_intent(iid):
    with STATE.lock:
        return 200, json.loads(json.dumps(get_intent(iid)))


def ep_confirm(iid, p):
    pm = p.get("payment_method", "")
    with STATE.lock:
        it = get_intent(iid)
        if it["status"] in ("succeeded", "canceled"):
            raise ApiError(400, "invalid_request_error", "payment_intent_unexpected_state",
                           "This PaymentIntent's status is %s." % it["status"], extra={"payment_intent": dict(it)})
        charge = STATE.next_id("ch")
        it["latest_charge"] = charge
        if pm == "pm_card_visa":
            it["status"] = "succeeded"
            it["last_payment_error"] = None
            STATE.captured[iid] = it["amount"]
            enqueue_event("payment_intent.succeeded", dict(it))
            return 200, json.loads(json.dumps(it))
        if pm in ("pm_card_chargeDeclined", "pm_card_chargeDeclinedInsufficientFunds"):
            dc = "insufficient_funds" if pm.endswith("InsufficientFunds") else "generic_decline"
            err = {"type": "card_error", "code": "card_declined", "decline_code": dc,
                   "message": "Your card was declined.", "charge": charge}
            it["status"] = "requires_payment_method"
            it["last_payment_error"] = err
            enqueue_event("payment_intent.payment_failed", dict(it))
            raise ApiError(402, "card_error", "card_declined", "Your card was declined.",
                           extra={"decline_code": dc, "charge": charge, "payment_intent": json.loads(json.dumps(it))})
        raise ApiError(400, "invalid_request_error", "resource_missing",
                       "No such PaymentMethod: '%s'" % pm, "payment_method")


def ep_cancel(iid, p):
    with STATE.lock:
        it = get_intent(iid)
        if it["status"] in ("succeeded", "canceled"):
            raise ApiError(400, "invalid_request_error", "payment_intent_unexpected_state",
                           "You cannot cancel this PaymentIntent because it has a status of %s." % it["status"],
                           extra={"payment_intent": json.loads(json.dumps(it))})
        it["status"] = "canceled"
        it["cancellation_reason"] = p.get("cancellation_reason", "requested_by_customer")
        return 200, json.loads(json.dumps(it))


def ep_refund(p):
    iid = p.get("payment_intent", "")
    amount = need_int(p, "amount", required=False)
    with STATE.lock:
        it = STATE.intents.get(iid)
        if it is None:
            raise ApiError(404, "invalid_request_error", "resource_missing",
                           "No such payment_intent: '%s'" % iid, "payment_intent")
        if it["status"] != "succeeded":
            raise ApiError(400, "invalid_request_error", "payment_intent_unexpected_state",
                           "This PaymentIntent does not have a successful charge to refund.")
        left = STATE.captured.get(iid, 0) - STATE.refunded.get(iid, 0)
        if left <= 0:
            raise ApiError(400, "invalid_request_error", "charge_already_refunded",
                           "Charge %s has already been refunded." % it["latest_charge"], "payment_intent")
        if amount is None:
            amount = left
        if amount > left:
            raise ApiError(400, "invalid_request_error", "amount_too_large",
                           "Refund amount (%d) is greater than unrefunded amount on charge (%d)" % (amount, left),
                           "amount")
        status = STATE.refund_status
        ref = {"id": STATE.next_id("re"), "object": "refund", "amount": amount, "currency": it["currency"],
               "payment_intent": iid, "charge": it["latest_charge"], "status": status,
               "reason": p.get("reason"), "metadata": p.get("metadata", {}), "created": int(time.time()),
               "failure_reason": "expired_or_canceled_card" if status == "failed" else None}
        if status != "failed":
            STATE.refunded[iid] = STATE.refunded.get(iid, 0) + amount
        STATE.refunds.append(ref)
        return 200, ref


def route(method, path, p):
    """(status, body) of a Stripe endpoint; raises ApiError. Also the template for counting."""
    parts = path.strip("/").split("/")
    if parts[:2] == ["v1", "payment_intents"]:
        if method == "POST" and len(parts) == 2:
            return "POST /v1/payment_intents", lambda: ep_create_intent(p)
        if method == "GET" and len(parts) == 3:
            return "GET /v1/payment_intents/{id}", lambda: ep_get_intent(parts[2])
        if method == "POST" and len(parts) == 4 and parts[3] == "confirm":
            return "POST /v1/payment_intents/{id}/confirm", lambda: ep_confirm(parts[2], p)
        if method == "POST" and len(parts) == 4 and parts[3] == "cancel":
            return "POST /v1/payment_intents/{id}/cancel", lambda: ep_cancel(parts[2], p)
    if method == "POST" and parts == ["v1", "refunds"]:
        return "POST /v1/refunds", lambda: ep_refund(p)
    return None, None


# ---- webhooks ----

def knobs_for(intent):
    k = dict(STATE.webhook_defaults)
    if STATE.webhook_next:
        k.update(STATE.webhook_next.pop(0))
    pay = str((intent.get("metadata") or {}).get("payment_id", ""))
    k.update(STATE.webhook_by_payment.get(pay, {}))
    return k


def enqueue_event(etype, obj, knobs=None):
    """Called with the lock held."""
    if knobs is None:
        knobs = knobs_for(obj)
    now = time.time()
    ev = {"id": STATE.next_id("evt"), "object": "event", "api_version": "2024-06-20",
          "created": int(now) - int(knobs.get("created_offset_s", 0)), "livemode": False,
          "pending_webhooks": 1, "type": etype, "data": {"object": obj}}
    body = json.dumps(ev, separators=(",", ":")).encode()
    pay = (obj.get("metadata") or {}).get("payment_id")
    if knobs.get("lose"):
        STATE.lost.append(ev["id"])
        STATE.deliveries.append({"event": ev["id"], "type": etype, "payment_id": pay, "attempt": 0,
                                 "status": "lost", "t": now})
        return ev
    copies = 1 + int(knobs.get("duplicate", 0))
    due = now + float(knobs.get("delay_ms", 0)) / 1000.0
    for i in range(copies):
        STATE.enq += 1
        d = {"event": ev["id"], "type": etype, "payment_id": pay, "body": body,
             "due": due + 0.05 * i, "attempt": 0, "n": STATE.enq}
        if knobs.get("reorder") and i == 0:
            STATE.held.append(d)
        else:
            STATE.queue.append(d)
    STATE.cond.notify_all()
    return ev


def sign(body, t):
    sigs = ",".join("v1=" + hmac.new(s.encode(), str(t).encode() + b"." + body, hashlib.sha256).hexdigest()
                    for s in STATE.secrets)
    return "t=%d,%s" % (t, sigs)


def send_one(d):
    """One attempt, lock NOT held. Returns the HTTP status or an error string."""
    with STATE.lock:
        url, header = STATE.webhook_url, sign(d["body"], int(time.time()))
    if not url:
        return "no-url"
    req = urllib.request.Request(url, data=d["body"], method="POST",
                                 headers={"Content-Type": "application/json", "Stripe-Signature": header,
                                          "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)"})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            r.read()
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except Exception as e:  # connection refused, timeout: a failed attempt
        return "error:%s" % type(e).__name__


def deliverer():
    while True:
        with STATE.lock:
            while True:
                now = time.time()
                due = [d for d in STATE.queue if d["due"] <= now]
                if due:
                    d = min(due, key=lambda x: x["due"])
                    STATE.queue.remove(d)
                    break
                wait = min([d["due"] for d in STATE.queue], default=now + 1.0) - now
                STATE.cond.wait(max(0.01, min(wait, 1.0)))
        d["attempt"] += 1
        st = send_one(d)
        with STATE.lock:
            STATE.deliveries.append({"event": d["event"], "type": d["type"], "payment_id": d["payment_id"],
                                     "attempt": d["attempt"], "status": st, "t": time.time()})
            ok = isinstance(st, int) and 200 <= st < 300
            log("deliver %s %s attempt %d -> %s" % (d["event"], d["type"], d["attempt"], st))
            if not ok and d["attempt"] < STATE.webhook_attempts:
                d["due"] = time.time() + min(5.0, 0.2 * (2 ** (d["attempt"] - 1)))
                STATE.queue.append(d)
            if ok and d["attempt"] == 1:
                # reorder: a held event goes right after the first one enqueued after it
                for h in [h for h in STATE.held if h["n"] < d["n"]]:
                    h["due"] = time.time()
                    STATE.queue.append(h)
                    STATE.held.remove(h)
            STATE.cond.notify_all()


# ---- HTTP ----

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "stripe-double/1"

    def log_message(self, fmt, *args):
        log("http " + (fmt % args))

    def answer(self, status, body, headers=None):
        data = json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            with STATE.lock:
                STATE.seq += 1
                rid = "req_%012d" % STATE.seq
            self.send_header("Request-Id", rid)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def do_GET(self):
        self.handle_any("GET")

    def do_POST(self):
        self.handle_any("POST")

    def do_DELETE(self):
        self.handle_any("DELETE")

    def authorized(self, params):
        a = self.headers.get("Authorization", "")
        with STATE.lock:
            key = STATE.key
        if a.startswith("Bearer ") and a[7:] == key:
            return True
        if a.startswith("Basic "):
            try:
                user = base64.b64decode(a[6:]).decode().split(":", 1)[0]
            except Exception:
                return False
            return user == key
        # Stripe.js confirms with the publishable key and the client secret
        parts = self.path.split("?")[0].strip("/").split("/")
        if len(parts) == 4 and parts[3] == "confirm" and "client_secret" in params:
            with STATE.lock:
                it = STATE.intents.get(parts[2])
                return it is not None and hmac.compare_digest(it["client_secret"], params["client_secret"])
        return False

    def handle_any(self, method):
        raw = self.read_body()
        path = self.path.split("?")[0]
        if path.startswith("/__double/"):
            return self.control(method, path, raw)
        pairs = urllib.parse.parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True)
        params = form_dict(pairs)
        if not self.authorized(params):
            self.record(method, path, self.headers.get("Idempotency-Key"), 401, False)
            return self.answer(401, ApiError(401, "invalid_request_error", None,
                                             "Invalid API Key provided: sk_****").body())
        tmpl, fn = route(method, path, params)
        if fn is None:
            return self.answer(404, ApiError(404, "invalid_request_error", None,
                                             "Unrecognized request URL (%s: %s)." % (method, path)).body())
        key = self.headers.get("Idempotency-Key") if method == "POST" else None
        fingerprint = (method, path, sorted(pairs))
        with STATE.lock:
            fault = self.take_fault(method, path)
            if method == "POST" and key is None and not path.endswith("/confirm"):
                STATE.unkeyed_posts += 1  # the adapter's POSTs; a buyer's confirm may have none
            if key is not None and key in STATE.keys:
                return self.replay(key, fingerprint, method, path)
            if key is not None:  # claimed in the same lock as the check: a concurrent twin gets 409
                STATE.keys[key] = self.key_entry(fingerprint, method, path, "running", None, None, {})
        # faults before execution: nothing done, nothing saved (unless "save")
        if fault and "status" in fault:
            e = ApiError(int(fault["status"]), fault.get("type", "api_error"), fault.get("code"),
                         "Injected fault (double)")
            hdr = {}
            if "should_retry" in fault:
                hdr["Stripe-Should-Retry"] = "true" if fault["should_retry"] else "false"
            if key is not None:
                with STATE.lock:
                    if fault.get("save"):
                        STATE.keys[key] = self.key_entry(fingerprint, method, path, "done", e.status, e.body(), hdr)
                    else:
                        STATE.keys.pop(key, None)
            self.record(method, path, key, e.status, False)
            return self.answer(e.status, e.body(), hdr)
        if fault and "timeout_s" in fault and not fault.get("apply"):
            if key is not None:  # never executed: a retry during the wait runs afresh
                with STATE.lock:
                    STATE.keys.pop(key, None)
            time.sleep(float(fault["timeout_s"]))
            self.record(method, path, key, "dropped", False)
            self.close_connection = True
            return None
        if fault and "hold_s" in fault:
            time.sleep(float(fault["hold_s"]))
        with STATE.lock:
            STATE.posts[tmpl] = STATE.posts.get(tmpl, 0) + 1
        try:
            status, body = fn()
            save = True
        except ApiError as e:
            status, body, save = e.status, e.body(), e.save
        with STATE.lock:
            if key is not None:
                if save:  # (an entry forgotten meanwhile by expire_keys or reset is saved again)
                    k = STATE.keys.setdefault(key, self.key_entry(fingerprint, method, path, "running",
                                                                   None, None, {}))
                    k.update(state="done", status=status, body=body)
                else:
                    STATE.keys.pop(key, None)
        self.record(method, path, key, status, False)
        if fault and "timeout_s" in fault:  # apply: done and saved; the answer is lost
            time.sleep(float(fault["timeout_s"]))
            self.close_connection = True
            return None
        return self.answer(status, body)

    @staticmethod
    def key_entry(fp, method, path, state, status, body, headers):
        return {"fp": fp, "method": method, "path": path, "state": state, "status": status, "body": body,
                "headers": headers, "replays": 0, "conflicts": 0}

    def replay(self, key, fp, method, path):
        """Lock held."""
        k = STATE.keys[key]
        if k["state"] == "running":
            k["conflicts"] += 1
            self.record(method, path, key, 409, False)
            return self.answer(409, ApiError(409, "idempotency_error", None,
                                             "There is currently another in-progress request using this "
                                             "Stripe API Key and Idempotency-Key.").body())
        if k["fp"] != fp:
            k["conflicts"] += 1
            self.record(method, path, key, 400, False)
            return self.answer(400, ApiError(400, "idempotency_error", None,
                                             "Keys for idempotent requests can only be used with the same "
                                             "parameters they were first used with.").body())
        k["replays"] += 1
        self.record(method, path, key, k["status"], True)
        hdr = dict(k["headers"])
        hdr["Idempotent-Replayed"] = "true"
        return self.answer(k["status"], k["body"], hdr)

    def record(self, method, path, key, status, replayed):
        with STATE.lock:
            STATE.requests.append({"method": method, "path": path, "key": key, "status": status,
                                   "replayed": replayed})
            if len(STATE.requests) > 1000:
                del STATE.requests[:500]
        log("api %s %s key=%s -> %s%s" % (method, path, key, status, " replayed" if replayed else ""))

    def take_fault(self, method, path):
        """Lock held."""
        for f in STATE.faults:
            if fnmatch.fnmatchcase(path, f.get("path", "*")) and f.get("method", method) == method:
                f["count"] = int(f.get("count", 1)) - 1
                if f["count"] <= 0:
                    STATE.faults.remove(f)
                return dict(f)
        return None

    def control(self, method, path, raw):
        try:
            req = json.loads(raw.decode()) if raw else {}
        except ValueError:
            return self.answer(400, {"error": "bad json"})
        with STATE.lock:
            if path == "/__double/state" and method == "GET":
                return self.answer(200, json.loads(json.dumps(STATE.snapshot(), default=str)))
            if method != "POST":
                return self.answer(404, {"error": "no such control route"})
            if path == "/__double/config":
                for name in ("key", "webhook_url", "secrets", "refund_status", "webhook_attempts",
                             "webhook_defaults", "webhook_next", "webhook_by_payment"):
                    if name in req:
                        setattr(STATE, name, req[name])
                if req.get("fail_clear"):
                    STATE.faults = []
                STATE.faults.extend(req.get("fail_next", []))
                STATE.cond.notify_all()
                return self.answer(200, {"ok": True})
            if path == "/__double/deliver":
                n = len(STATE.held) + len(STATE.queue)
                for d in STATE.held + STATE.queue:
                    d["due"] = time.time()
                STATE.queue.extend(STATE.held)
                STATE.held = []
                STATE.cond.notify_all()
                return self.answer(200, {"sent": n})
            if path == "/__double/emit":
                obj = {"id": STATE.next_id("pi"), "object": "payment_intent", "status": "succeeded",
                       "amount": 0, "currency": "eur", "metadata": {}, "latest_charge": None,
                       "last_payment_error": None}
                obj.update(req.get("intent", {}))
                ev = enqueue_event(req.get("type", "payment_intent.succeeded"), obj,
                                   req.get("knobs") if "knobs" in req else None)
                return self.answer(200, {"event": ev["id"]})
            if path == "/__double/expire_keys":
                n = len(STATE.keys)
                STATE.keys = {}
                return self.answer(200, {"expired": n})
            if path == "/__double/reset":
                STATE.reset()
                return self.answer(200, {"ok": True})
        return self.answer(404, {"error": "no such control route"})


def main():
    global STATE, VERBOSE
    ap = argparse.ArgumentParser(description="Stripe API test double (see the header comment)")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--key", default="sk_test_double")
    ap.add_argument("--webhook-url", default="")
    ap.add_argument("--secret", action="append", default=[])
    ap.add_argument("--log")
    a = ap.parse_args()
    if a.log:
        VERBOSE = open(a.log, "a")
    STATE = State(a.key, a.webhook_url, a.secret or ["whsec_test_secret"])
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.allow_reuse_address = True
    srv = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    port = srv.server_address[1]
    threading.Thread(target=deliverer, daemon=True).start()
    if a.port_file:
        tmp = a.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.rename(tmp, a.port_file)
    print("port=%d" % port, flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
