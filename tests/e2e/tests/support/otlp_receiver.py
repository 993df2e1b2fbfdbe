#!/usr/bin/env python3
"""An OTLP/HTTP trace receiver for tests/e2e/tests/tracing.rs.

Listens on 127.0.0.1 on a free port and prints that port on stdout (one
line), then serves until stdin closes (the test holds the pipe) or it is
killed.

POST /v1/traces with an `application/x-protobuf` body is decoded as an
`ExportTraceServiceRequest` with the official OpenTelemetry protobuf
definitions (PyPI's opentelemetry-proto), exactly as a collector would; a
body that does not decode gets 400. Each span received is appended to
--out as one JSON line: its resource's service.name, the scope name, the
trace id, span id and parent span id (lower-case hex), the name, the kind
(the enum's name), the attributes (as plain values), the status code, and
start and end times (Unix nanoseconds). The answer is an empty
`ExportTraceServiceResponse`, as protobuf.

Needs opentelemetry-proto (python3 -m pip install opentelemetry-proto;
.ci/run installs it).
"""

import argparse
import http.server
import json
import sys
import threading

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.trace.v1 import trace_pb2


def value_of(v):
    """An AnyValue as a plain JSON value."""
    which = v.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [value_of(x) for x in v.array_value.values]
    if which == "kvlist_value":
        return {kv.key: value_of(kv.value) for kv in v.kvlist_value.values}
    if which == "bytes_value":
        return v.bytes_value.hex()
    return getattr(v, which)


def attributes(kvs):
    return {kv.key: value_of(kv.value) for kv in kvs}


class Handler(http.server.BaseHTTPRequestHandler):
    out = None
    lock = threading.Lock()

    def log_message(self, fmt, *args):  # quiet
        pass

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        if self.path != "/v1/traces":
            self.send_error(404, "only /v1/traces")
            return
        if self.headers.get("Content-Type") != "application/x-protobuf":
            self.send_error(415, "expected application/x-protobuf")
            return
        req = trace_service_pb2.ExportTraceServiceRequest()
        try:
            req.ParseFromString(body)
        except DecodeError as e:
            self.send_error(400, f"not an ExportTraceServiceRequest: {e}")
            return
        lines = []
        for rs in req.resource_spans:
            resource = attributes(rs.resource.attributes)
            for ss in rs.scope_spans:
                for s in ss.spans:
                    lines.append(
                        json.dumps(
                            {
                                "service": resource.get("service.name"),
                                "resource": resource,
                                "scope": ss.scope.name,
                                "trace_id": s.trace_id.hex(),
                                "span_id": s.span_id.hex(),
                                "parent_span_id": s.parent_span_id.hex(),
                                "name": s.name,
                                "kind": trace_pb2.Span.SpanKind.Name(s.kind),
                                "attributes": attributes(s.attributes),
                                "status": trace_pb2.Status.StatusCode.Name(s.status.code),
                                "start": s.start_time_unix_nano,
                                "end": s.end_time_unix_nano,
                            }
                        )
                    )
        with self.lock:
            with open(self.out, "a", encoding="utf-8") as f:
                for line in lines:
                    f.write(line + "\n")
        answer = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    Handler.out = args.out
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(server.server_address[1], flush=True)
    # serve until the test closes our stdin
    sys.stdin.read()
    server.shutdown()


if __name__ == "__main__":
    main()
