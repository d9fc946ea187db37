"""Exit 0 when the broker on localhost:PORT (argv[1], default 9092) answers a Kafka ApiVersions request.

The same probe as deploy/local/kafka.sh: a real round trip, so the broker is serving, not just
listening. ApiVersions needs no authentication; with a CA file (argv[2]) the port is probed over TLS.
"""

import contextlib
import socket
import ssl
import struct
import sys

port = int(sys.argv[1]) if len(sys.argv) > 1 else 9092
cafile = sys.argv[2] if len(sys.argv) > 2 else ""
client = b"lw-probe"
body = struct.pack(">hhih", 18, 0, 1, len(client)) + client
with contextlib.ExitStack() as stack:
    s = stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=2))
    if cafile:
        s = stack.enter_context(ssl.create_default_context(cafile=cafile).wrap_socket(s, server_hostname="localhost"))
    s.settimeout(3)
    s.sendall(struct.pack(">i", len(body)) + body)
    size = struct.unpack(">i", s.recv(4))[0]
    data = b""
    while len(data) < size:
        chunk = s.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    corr, err = struct.unpack(">ih", data[:6])
    sys.exit(0 if corr == 1 and err == 0 else 1)
