"""Loopback HTTP proxy in front of the local DynamoDB engine. Two jobs:

1. Contention mode (HOLD_MS > 0). Both local engines (DynamoDB Local and moto) run
   one request at a time per item and never reject a transaction because another
   one is in flight. DynamoDB does: a TransactWriteItems that touches an item
   another transaction holds is cancelled with TransactionCanceledException, reason
   code TransactionConflict for that item, and a plain PutItem/UpdateItem/DeleteItem
   on a held item fails with TransactionConflictException. With a hold window:
   - a TransactWriteItems holds the items it names for HOLD_MS before it is passed
     on (and until the engine has answered), as if it were still being prepared;
   - another TransactWriteItems (or TransactGetItems) naming a held item is
     cancelled at once, with per-item reasons in DynamoDB's wire format;
   - a PutItem / UpdateItem / DeleteItem on a held item gets TransactionConflictException.
   Every conflict it produces is counted; GET /contention-stats answers
   {"transaction_conflicts": N, "write_conflicts": N, "held_items": N,
   "engine_lock_retries": N}.

2. The old item on a failed single-item condition. Since 2023 DynamoDB returns the
   item a PutItem/UpdateItem/DeleteItem's condition failed on when the request asks
   with ReturnValuesOnConditionCheckFailure=ALL_OLD; DynamoDB Local 1.11.478 (2020)
   ignores the parameter. The proxy fills it in (a consistent GetItem right after the
   failure), so the stores run locally exactly as they do on AWS, with the same
   request counts (the SDK counts requests before the proxy). Unlike AWS, the item
   is read just after the failure, not atomically with it.

3. DynamoDB Local's lock time-outs. Under concurrent load DynamoDB Local answers
   some requests with HTTP 500 "This action timed out because it too long waiting
   for a lock. This request will succeed in actual DynamoDB API": the proxy retries
   those (up to 20 times, jittered), counted as "engine_lock_retries".

Everything else is passed through unchanged. HOLD_MS = 0: jobs 2 and 3 only.

Usage: python ddb_proxy.py LISTEN_PORT UPSTREAM_URL HOLD_MS
Listens on 127.0.0.1 only.
"""

import http.client
import json
import random
import socket
import sys
import threading
import time
import urllib.parse
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PREFIX = "DynamoDB_20120810."
PLAIN_WRITES = {"PutItem", "UpdateItem", "DeleteItem"}
ENGINE_LOCK_TIMEOUT = b"too long waiting for a lock"
LOCK_RETRIES = 20
SLOW_SECONDS = 0.5  # the engine's answers slower than this are logged
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length"}


class Engine:
    """The upstream engine: one keep-alive connection per proxy thread, and each
    table's key attributes (asked once, with DescribeTable)."""

    def __init__(self, url):
        parsed = urllib.parse.urlsplit(url)
        self.host, self.port = parsed.hostname, parsed.port
        self.local = threading.local()
        self.key_names = {}
        self.key_lock = threading.Lock()
        self.lock_retries = 0

    def send(self, method, path, body, headers):
        started = time.monotonic()
        status, resp_headers, data = self.send_retrying(method, path, body, headers)
        elapsed = time.monotonic() - started
        if elapsed > SLOW_SECONDS:
            op = next((v for k, v in headers.items() if k.lower() == "x-amz-target"), "?")
            print(f"slow: {op} {elapsed * 1000:.0f} ms (HTTP {status})", file=sys.stderr, flush=True)
        return status, resp_headers, data

    def send_retrying(self, method, path, body, headers):
        """The engine's answer. DynamoDB Local (SQLite inside) answers a request that
        waited too long for its internal lock with HTTP 500 and "This request will
        succeed in actual DynamoDB API": an artefact of the engine, so the proxy
        retries it (bounded) instead of handing it to the caller."""
        for attempt in range(LOCK_RETRIES):
            status, resp_headers, data = self.send_once(method, path, body, headers)
            if status != 500 or ENGINE_LOCK_TIMEOUT not in data:
                break
            self.lock_retries += 1
            time.sleep(random.uniform(0.005, 0.02) * (attempt + 1))
        return status, resp_headers, data

    def send_once(self, method, path, body, headers):
        for attempt in (1, 2):
            conn = getattr(self.local, "conn", None)
            if conn is None:
                conn = self.local.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
                conn.connect()
                conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                conn.request(method, path, body=body, headers=headers)
                resp = conn.getresponse()
                return resp.status, resp.getheaders(), resp.read()
            except (ConnectionError, http.client.HTTPException):
                conn.close()
                self.local.conn = None
                if attempt == 2:
                    raise

    def keys_of(self, table, headers):
        with self.key_lock:
            if table in self.key_names:
                return self.key_names[table]
        body = json.dumps({"TableName": table}).encode()
        # Only what the engine needs (it checks that a credential is named, not the
        # signature); the caller's other headers describe the caller's own request.
        h = {"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": PREFIX + "DescribeTable"}
        auth = [v for k, v in headers.items() if k.lower() == "authorization"]
        if auth:
            h["Authorization"] = auth[0]
        status, _, data = self.send("POST", "/", body, h)
        if status != 200:
            print(f"DescribeTable {table}: HTTP {status} {data[:200]!r}", file=sys.stderr, flush=True)
        names = None
        if status == 200:
            names = tuple(k["AttributeName"] for k in json.loads(data)["Table"]["KeySchema"])
        with self.key_lock:
            if names is not None:
                self.key_names[table] = names
        return names


class Holds:
    """Which items in-flight transactions hold. All-or-nothing: a transaction
    either takes every item it names or none."""

    def __init__(self):
        self.lock = threading.Lock()
        self.held = {}
        self.transaction_conflicts = 0
        self.write_conflicts = 0

    def take(self, keys):
        """None if taken, else the positions of the items already held."""
        with self.lock:
            busy = [i for i, k in enumerate(keys) if k is not None and k in self.held]
            if busy:
                self.transaction_conflicts += 1
                return busy
            for k in keys:
                if k is not None:
                    self.held[k] = self.held.get(k, 0) + 1
            return None

    def release(self, keys):
        with self.lock:
            for k in keys:
                if k is None:
                    continue
                left = self.held[k] - 1
                if left:
                    self.held[k] = left
                else:
                    del self.held[k]

    def is_held(self, key, count_as_write_conflict):
        with self.lock:
            busy = key is not None and key in self.held
            if busy and count_as_write_conflict:
                self.write_conflicts += 1
            return busy


def item_key(engine, headers, table, op_type, op):
    """A canonical string for the item an operation names, or None if unknown."""
    if op_type == "Put":
        names = engine.keys_of(table, headers)
        if names is None:
            return None
        attrs = op.get("Item", {})
        key = {n: attrs.get(n) for n in names}
    else:
        key = op.get("Key")
        if key is None:
            return None
    return table + "\x00" + json.dumps(key, sort_keys=True)


def with_old_item(engine, headers, op, request, data):
    """The error body with the old item added, when the engine left it out of a
    ConditionalCheckFailedException that asked for it; else None."""
    if request.get("ReturnValuesOnConditionCheckFailure") != "ALL_OLD":
        return None
    try:
        error = json.loads(data)
    except ValueError:
        return None
    if not error.get("__type", "").endswith("ConditionalCheckFailedException") or "Item" in error:
        return None
    table = request.get("TableName")
    if op == "PutItem":
        names = engine.keys_of(table, headers)
        if names is None:
            return None
        key = {n: request.get("Item", {}).get(n) for n in names}
    else:
        key = request.get("Key")
    get_headers = {k: v for k, v in headers.items() if k.lower() in ("authorization", "content-type")}
    get_headers["X-Amz-Target"] = PREFIX + "GetItem"
    body = json.dumps({"TableName": table, "Key": key, "ConsistentRead": True}).encode()
    status, _, got = engine.send("POST", "/", body, get_headers)
    if status != 200:
        return None
    item = json.loads(got).get("Item")
    if item is None:
        return None
    error["Item"] = item
    return json.dumps(error).encode()


def error_body(kind, message, reasons=None):
    body = {"__type": "com.amazonaws.dynamodb.v20120810#" + kind, "message": message}
    if reasons is not None:
        body["CancellationReasons"] = reasons
    return json.dumps(body).encode()


def make_handler(engine, holds, hold_seconds):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in separate writes: with Nagle's algorithm on,
        # the client's delayed ACK held every answer ~40 ms.
        disable_nagle_algorithm = True

        def log_message(self, *args):  # quiet: one line per request would swamp the log
            pass

        def reply(self, status, headers, body):
            self.send_response(status)
            for k, v in headers:
                if k.lower() not in HOP_BY_HOP:
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def reject(self, kind, message, reasons=None):
            self.reply(400, [("Content-Type", "application/x-amz-json-1.0")],
                       error_body(kind, message, reasons))

        def do_GET(self):
            if self.path == "/contention-stats":
                with holds.lock:
                    stats = {"transaction_conflicts": holds.transaction_conflicts,
                             "write_conflicts": holds.write_conflicts,
                             "held_items": len(holds.held),
                             "engine_lock_retries": engine.lock_retries}
                self.reply(200, [("Content-Type", "application/json")], json.dumps(stats).encode())
            else:
                self.forward(b"")

        def forward(self, body, request=None, op=None):
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            status, resp_headers, data = engine.send(self.command, self.path, body, headers)
            if status == 400 and op in PLAIN_WRITES and request is not None:
                patched = with_old_item(engine, headers, op, request, data)
                if patched is not None:
                    data = patched
                    resp_headers = [(k, v) for k, v in resp_headers if k.lower() != "x-amz-crc32"]
                    resp_headers.append(("x-amz-crc32", str(zlib.crc32(data))))
            self.reply(status, resp_headers, data)

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            op = self.headers.get("X-Amz-Target", "")
            op = op[len(PREFIX):] if op.startswith(PREFIX) else ""
            if op not in PLAIN_WRITES | {"TransactWriteItems", "TransactGetItems"}:
                return self.forward(body)
            try:
                request = json.loads(body)
            except ValueError:
                return self.forward(body)  # the engine reports malformed input itself
            if hold_seconds <= 0 and op not in PLAIN_WRITES:
                return self.forward(body)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            if op in PLAIN_WRITES:
                if hold_seconds > 0:
                    kind = "Put" if op == "PutItem" else "Key"
                    key = item_key(engine, headers, request.get("TableName"), kind, request)
                    if holds.is_held(key, count_as_write_conflict=True):
                        return self.reject("TransactionConflictException",
                                           "Transaction is ongoing for the item")
                return self.forward(body, request, op)
            keys = []
            for entry in request.get("TransactItems", []):
                op_type, item_op = next(iter(entry.items()))
                keys.append(item_key(engine, headers, item_op.get("TableName"), op_type, item_op))
            if op == "TransactGetItems":
                busy = [i for i, k in enumerate(keys) if holds.is_held(k, False)]
                if busy:
                    with holds.lock:
                        holds.transaction_conflicts += 1
                    return self.cancel(keys, busy)
                return self.forward(body)
            busy = holds.take(keys)
            if busy is not None:
                return self.cancel(keys, busy)
            try:
                time.sleep(hold_seconds)
                self.forward(body)
            finally:
                holds.release(keys)

        def cancel(self, keys, busy):
            reasons = [{"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"}
                       if i in busy else {"Code": "None"} for i in range(len(keys))]
            codes = ", ".join(r["Code"] for r in reasons)
            self.reject("TransactionCanceledException",
                        f"Transaction cancelled, please refer cancellation reasons for specific reasons [{codes}]",
                        reasons)

    return Handler


def main():
    port, upstream, hold_ms = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
    ThreadingHTTPServer.request_queue_size = 256  # bursts of concurrent clients, not 5
    ThreadingHTTPServer.daemon_threads = True
    server = ThreadingHTTPServer(("127.0.0.1", port), make_handler(Engine(upstream), Holds(), hold_ms / 1000))
    server.serve_forever()


if __name__ == "__main__":
    main()
