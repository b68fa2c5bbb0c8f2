"""moto's server, with the emulator's DynamoDB requests handled one at a time.

moto 5.2.5's TransactWriteItems deep-copies a table without a lock, so two
concurrent writes to one table can fail inside moto ("dictionary changed size
during iteration", HTTP 500). DynamoDB itself is safe under concurrency, and our
code relies on its conditional writes for that; serialising only the emulator's
DynamoDB requests keeps the tests about our code rather than moto's threading.
SQS (long polls included) and everything else stay concurrent.

The same TransactWriteItems also backs up every table it touches with a full
deep copy before each transaction, and swaps the copy in when a condition fails,
leaking the old table: each transaction cost O(table size) and a failed one
leaked the whole table (measured: 200 failed transactions on a 3,000-item table
took 70 s and left 1.4 GB that gc could not free; a test run grew moto to
15 GB). `cheap_transaction_backups` keeps moto's transaction logic but backs up
only the items the transaction names and restores those on failure.

Usage: python moto_server.py HOST PORT
"""

import copy
import sys
import threading
import types

import moto.dynamodb.models as dynamodb_models
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple



def cheap_transaction_backups():
    backend = dynamodb_models.DynamoDBBackend
    original = backend.transact_write_items

    def table_backup_is_the_table(value, memo=None):
        # moto's whole-table "backup": hand back the live table, so its
        # rollback (`self.tables[name] = backup`) changes nothing; the items
        # are restored below instead. Anything else is really deep-copied.
        if isinstance(value, dynamodb_models.Table):
            return value
        return copy.deepcopy(value, memo)

    dynamodb_models.copy = types.SimpleNamespace(
        deepcopy=table_backup_is_the_table, copy=copy.copy
    )

    def transact_write_items(self, transact_items):
        before = []  # (table, key, item JSON or None) for each named item
        for entry in transact_items:
            op_type, op = next(iter(entry.items()))
            name = op.get("TableName")
            if name not in self.tables or op_type == "ConditionCheck":
                continue
            table = self.tables[name]
            if op_type == "Put":
                attrs = op.get("Item", {})
                key = {table.hash_key_attr: attrs.get(table.hash_key_attr)}
                if table.range_key_attr is not None:
                    key[table.range_key_attr] = attrs.get(table.range_key_attr)
            else:
                key = op.get("Key")
            try:
                current = self.get_item(name, key)
            except Exception:  # malformed key: moto's own code reports it
                continue
            snapshot = copy.deepcopy(current.to_json()["Attributes"]) if current else None
            before.append((name, key, snapshot))
        try:
            return original(self, transact_items)
        except Exception:
            for name, key, snapshot in reversed(before):
                try:
                    if snapshot is None:
                        self.delete_item(name, key)
                    else:
                        self.put_item(name, snapshot)
                except Exception:
                    pass
            raise

    backend.transact_write_items = transact_write_items


cheap_transaction_backups()
host, port = sys.argv[1], int(sys.argv[2])
app = DomainDispatcherApplication(create_backend_app)
dynamodb = threading.Lock()


def serialised_dynamodb(environ, start_response):
    if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB"):
        with dynamodb:
            # Materialise the response while holding the lock.
            return list(app(environ, start_response))
    return app(environ, start_response)


run_simple(host, port, serialised_dynamodb, threaded=True, request_handler=MotoRequestHandler)
