#!/usr/bin/env python3
"""A minimal AMQP 0-9-1 client that tries ONE operation and says whether the broker allowed it.

  amqp_probe.py URL OPERATION [ARGS...]

  login                                 connect and log in only
  declare-exchange NAME                 exchange.declare (direct, durable)
  declare-queue NAME [TYPE [ARG=VALUE...]]
                                        queue.declare (durable, non-passive), x-queue-type
                                        TYPE (classic by default) and more arguments
  delete-queue NAME                     queue.delete
  purge-queue NAME                      queue.purge
  bind QUEUE EXCHANGE KEY               queue.bind
  consume QUEUE                         basic.consume, then channel.close (any delivery that
                                        arrived meanwhile goes back to the queue, unacked)
  publish EXCHANGE KEY                  basic.publish of an empty message with publisher
                                        confirms (a refused publish closes the channel)

Prints one line, "allowed" or "refused <code> <reply text>", and exits 0 when allowed, 3
when the broker refused (ACCESS_REFUSED 403, NOT_FOUND 404, a failed login ...), 2 on a
usage or network error. The tests use it to show what a service's RabbitMQ user may and may
not do; it needs no client library (python3 only), so it runs wherever scripts/run runs.
"""

import socket
import struct
import sys
import urllib.parse

FRAME_METHOD, FRAME_HEADER, FRAME_BODY, FRAME_HEARTBEAT = 1, 2, 3, 8
FRAME_END = b"\xce"


class Refused(Exception):
    def __init__(self, code, text):
        super().__init__(f"{code} {text}")
        self.code = code
        self.text = text


def shortstr(text):
    data = text.encode()
    return struct.pack("B", len(data)) + data


def longstr(data):
    if isinstance(data, str):
        data = data.encode()
    return struct.pack(">I", len(data)) + data


def table(entries):
    body = b""
    for key, value in entries.items():
        body += shortstr(key)
        if isinstance(value, bool):
            body += b"t" + struct.pack("B", 1 if value else 0)
        elif isinstance(value, int):
            body += b"l" + struct.pack(">q", value)
        else:
            body += b"S" + longstr(value)
    return longstr(body)


class Connection:
    def __init__(self, url, timeout=15.0):
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "amqp":
            raise ValueError("only amqp:// URLs (no TLS in this probe)")
        self.user = urllib.parse.unquote(parts.username or "guest")
        self.password = urllib.parse.unquote(parts.password or "guest")
        path = parts.path[1:] if parts.path.startswith("/") else parts.path
        self.vhost = urllib.parse.unquote(path) if path else "/"
        self.sock = socket.create_connection((parts.hostname, parts.port or 5672), timeout)
        self.buffer = b""

    def read_exact(self, count):
        while len(self.buffer) < count:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise Refused(0, "the broker closed the connection")
            self.buffer += chunk
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data

    def read_frame(self):
        kind, channel, size = struct.unpack(">BHI", self.read_exact(7))
        payload = self.read_exact(size)
        if self.read_exact(1) != FRAME_END:
            raise ValueError("bad frame end")
        return kind, channel, payload

    def send_method(self, channel, class_id, method_id, args=b""):
        payload = struct.pack(">HH", class_id, method_id) + args
        self.sock.sendall(struct.pack(">BHI", FRAME_METHOD, channel, len(payload)) + payload + FRAME_END)

    def send_content(self, channel, class_id, body):
        header = struct.pack(">HHQH", class_id, 0, len(body), 0)
        self.sock.sendall(struct.pack(">BHI", FRAME_HEADER, channel, len(header)) + header + FRAME_END)
        if body:
            self.sock.sendall(struct.pack(">BHI", FRAME_BODY, channel, len(body)) + body + FRAME_END)

    def wait_method(self, channel, wanted):
        """Reads frames until one of the `wanted` (class, method) pairs arrives on `channel`;
        a channel.close or connection.close from the broker raises Refused."""
        while True:
            kind, frame_channel, payload = self.read_frame()
            if kind != FRAME_METHOD:
                continue  # content of a delivery, heartbeats
            class_id, method_id = struct.unpack(">HH", payload[:4])
            if (class_id, method_id) == (10, 50) or (
                (class_id, method_id) == (20, 40) and frame_channel == channel
            ):
                code = struct.unpack(">H", payload[4:6])[0]
                length = payload[6]
                text = payload[7 : 7 + length].decode(errors="replace")
                # Politeness: close-ok, so the broker logs no protocol error.
                try:
                    self.send_method(frame_channel, class_id, method_id + 1)
                except OSError:
                    pass
                raise Refused(code, text)
            if frame_channel == channel and (class_id, method_id) in wanted:
                return class_id, method_id, payload[4:]

    def login(self):
        self.sock.sendall(b"AMQP\x00\x00\x09\x01")
        self.wait_method(0, {(10, 10)})  # connection.start
        # authentication_failure_close: a refused login is a connection.close with 403
        # instead of a silently dropped socket.
        capabilities = table({"authentication_failure_close": True})
        client = shortstr("product") + b"S" + longstr("amqp_probe")
        client += shortstr("capabilities") + b"F" + capabilities
        response = b"\x00" + self.user.encode() + b"\x00" + self.password.encode()
        self.send_method(
            0, 10, 11, longstr(client) + shortstr("PLAIN") + longstr(response) + shortstr("en_US")
        )
        _, _, args = self.wait_method(0, {(10, 30)})  # connection.tune
        channel_max, frame_max, _ = struct.unpack(">HIH", args[:8])
        self.send_method(0, 10, 31, struct.pack(">HIH", channel_max, frame_max, 0))
        self.send_method(0, 10, 40, shortstr(self.vhost) + shortstr("") + b"\x00")
        self.wait_method(0, {(10, 41)})

    def open_channel(self, channel=1):
        self.send_method(channel, 20, 10, shortstr(""))
        self.wait_method(channel, {(20, 11)})

    def close(self):
        try:
            self.send_method(0, 10, 50, struct.pack(">H", 200) + shortstr("bye") + struct.pack(">HH", 0, 0))
            self.wait_method(0, {(10, 51)})
        except (Refused, OSError, ValueError):
            pass
        self.sock.close()


def run(url, operation, args):
    connection = Connection(url)
    connection.login()
    if operation == "login":
        connection.close()
        return
    channel = 1
    connection.open_channel(channel)
    reserved = struct.pack(">H", 0)
    if operation == "declare-exchange":
        (name,) = args
        # passive=0 durable=1 auto_delete=0 internal=0 nowait=0
        connection.send_method(channel, 40, 10, reserved + shortstr(name) + shortstr("direct") + b"\x02" + table({}))
        connection.wait_method(channel, {(40, 11)})
    elif operation == "declare-queue":
        name = args[0]
        arguments = {"x-queue-type": args[1] if len(args) > 1 else "classic"}
        for pair in args[2:]:
            key, _, value = pair.partition("=")
            arguments[key] = int(value) if value.lstrip("-").isdigit() else value
        connection.send_method(channel, 50, 10, reserved + shortstr(name) + b"\x02" + table(arguments))
        connection.wait_method(channel, {(50, 11)})
    elif operation == "delete-queue":
        (name,) = args
        connection.send_method(channel, 50, 40, reserved + shortstr(name) + b"\x00")
        connection.wait_method(channel, {(50, 41)})
    elif operation == "purge-queue":
        (name,) = args
        connection.send_method(channel, 50, 30, reserved + shortstr(name) + b"\x00")
        connection.wait_method(channel, {(50, 31)})
    elif operation == "bind":
        queue, exchange, key = args
        connection.send_method(
            channel, 50, 20, reserved + shortstr(queue) + shortstr(exchange) + shortstr(key) + b"\x00" + table({})
        )
        connection.wait_method(channel, {(50, 21)})
    elif operation == "consume":
        (queue,) = args
        # basic.qos prefetch 1: at most one message is held (and requeued) while we look.
        connection.send_method(channel, 60, 10, struct.pack(">IHB", 0, 1, 0))
        connection.wait_method(channel, {(60, 11)})
        connection.send_method(
            channel, 60, 20, reserved + shortstr(queue) + shortstr("") + b"\x00" + table({})
        )
        connection.wait_method(channel, {(60, 21)})
    elif operation == "publish":
        exchange, key = args
        connection.send_method(channel, 85, 10, b"\x00")  # confirm.select
        connection.wait_method(channel, {(85, 11)})
        connection.send_method(channel, 60, 40, reserved + shortstr(exchange) + shortstr(key) + b"\x00")
        connection.send_content(channel, 60, b"")
        connection.wait_method(channel, {(60, 80), (60, 120)})  # basic.ack / basic.nack
    else:
        raise ValueError(f"unknown operation {operation}")
    connection.send_method(channel, 20, 40, struct.pack(">H", 200) + shortstr("done") + struct.pack(">HH", 0, 0))
    connection.wait_method(channel, {(20, 41)})
    connection.close()


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        run(argv[1], argv[2], argv[3:])
    except Refused as refusal:
        print(f"refused {refusal.code} {refusal.text}")
        return 3
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print("allowed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
