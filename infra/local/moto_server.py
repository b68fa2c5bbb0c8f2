"""moto's server, with the emulator's DynamoDB requests handled one at a time.

moto 5.2.5's TransactWriteItems deep-copies a table without a lock, so two
concurrent writes to one table can fail inside moto ("dictionary changed size
during iteration", HTTP 500). DynamoDB itself is safe under concurrency, and our
code relies on its conditional writes for that; serialising only the emulator's
DynamoDB requests keeps the tests about our code rather than moto's threading.
SQS (long polls included) and everything else stay concurrent.

Usage: python moto_server.py HOST PORT
"""

import sys
import threading

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple

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
