"""Drive real oslo.messaging RPC and notification traffic through a RabbitMQ vhost.

Used by the tracer's integration tests. It starts an RPC server (threading executor) on a topic,
then a client makes calls with replies, casts to the topic and to one server, a fanout cast, a call
to a method that raises, and versioned notifications. Every message carries a request context with
request ids and a secret auth token, so the test can check the ids are decoded and the token never
reaches the tracer's output. The last line on stdout is a JSON summary of what was sent.
"""

import argparse
import json
import sys
import threading
import time

import oslo_messaging
from oslo_config import cfg
from oslo_context.context import RequestContext


class EchoEndpoint:
    """The remote methods; `fail` raises so the caller gets a failure reply."""

    target = oslo_messaging.Target(namespace="butterfly", version="1.3")

    def __init__(self):
        self.casts = 0
        self.fanouts = 0
        self.lock = threading.Lock()

    def echo(self, ctxt, value):
        return {"echo": value}

    def fail(self, ctxt, reason):
        raise ValueError("deliberate failure: %s" % reason)

    def record(self, ctxt, item):
        with self.lock:
            self.casts += 1

    def refresh(self, ctxt, item):
        with self.lock:
            self.fanouts += 1


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True, help="rabbit://user:pass@host:port/vhost")
    parser.add_argument("--exchange", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--server", default="hosta")
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--casts", type=int, default=3)
    parser.add_argument("--secret", required=True, help="auth token put into every context")
    args = parser.parse_args()

    # oslo.messaging registers some options (tracing) on the global CONF only, so use it.
    conf = cfg.CONF
    conf([], project="butterfly-tracer-test")
    oslo_messaging.set_transport_defaults(control_exchange=args.exchange)
    transport = oslo_messaging.get_rpc_transport(conf, url=args.url)
    notify_transport = oslo_messaging.get_notification_transport(conf, url=args.url)

    endpoint = EchoEndpoint()
    server_target = oslo_messaging.Target(topic=args.topic, server=args.server)
    server = oslo_messaging.get_rpc_server(
        transport, server_target, [endpoint])
    server.start()
    # The server declares its queues asynchronously; give it a moment before the first call.
    time.sleep(1.0)

    # A real RequestContext, as the services use: RPC sends its to_dict() (auth token included,
    # which the tracer must strip); notifications send its redacted_copy().
    ctxt = RequestContext(
        request_id="req-11111111-2222-3333-4444-555555555555",
        global_request_id="req-99999999-8888-7777-6666-555555555555",
        user_id="u-butterfly",
        project_id="p-butterfly",
        auth_token=args.secret,
    )
    client = oslo_messaging.get_rpc_client(
        transport, oslo_messaging.Target(topic=args.topic, namespace="butterfly", version="1.3"))

    sent = {"calls": 0, "casts": 0, "fanouts": 0, "failures": 0, "notifications": 0}
    for i in range(args.calls):
        reply = client.call(ctxt, "echo", value=i)
        assert reply == {"echo": i}, reply
        sent["calls"] += 1

    try:
        client.call(ctxt, "fail", reason="test")
    except oslo_messaging.RemoteError as error:
        assert error.exc_type == "ValueError", error.exc_type
        sent["calls"] += 1
        sent["failures"] += 1
    except ValueError:
        # oslo.messaging re-raises builtin exceptions as themselves.
        sent["calls"] += 1
        sent["failures"] += 1

    for i in range(args.casts):
        client.cast(ctxt, "record", item=i)
        sent["casts"] += 1
    client.prepare(server=args.server).cast(ctxt, "record", item="direct")
    sent["casts"] += 1
    client.prepare(fanout=True).cast(ctxt, "refresh", item="all")
    sent["fanouts"] += 1

    notifier = oslo_messaging.Notifier(
        notify_transport, publisher_id="nova-compute:%s" % args.server,
        driver="messagingv2", topics=["versioned_notifications"])
    notifier.info(ctxt, "instance.create.start", {"uuid": "abc"})
    notifier.error(ctxt, "instance.create.error", {"uuid": "abc"})
    sent["notifications"] += 2

    # A final call makes sure every earlier cast was consumed before the server stops.
    deadline = time.time() + 10
    while time.time() < deadline:
        with endpoint.lock:
            if endpoint.casts == sent["casts"] and endpoint.fanouts == sent["fanouts"]:
                break
        time.sleep(0.05)
    server.stop()
    server.wait()
    transport.cleanup()
    notify_transport.cleanup()
    print(json.dumps(sent))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
