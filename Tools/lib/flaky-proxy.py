#!/usr/bin/env python3
"""A TCP proxy on loopback between a NATS client and its server that loses acknowledgements:
every Nth publish on a `herald.` subject goes through to the server, and then, before the
server's answer can come back, the connection is cut (the answer is dropped). What a writer
sees when the network fails between its publish and its acknowledgement. For the JetStream
log's lost-acknowledgement test.

    flaky-proxy.py LISTEN_PORT UPSTREAM_PORT EVERY_NTH_PUBLISH

Prints a line `cut N` each time it drops an answer and cuts. Runs until killed. Standard
library only.
"""
import socket
import sys
import threading
import time

listen_port = int(sys.argv[1])
upstream_port = int(sys.argv[2])
every = int(sys.argv[3])
lock = threading.Lock()
publishes = 0
cuts = 0


class Pair:
    def __init__(self, client, server):
        self.client, self.server = client, server
        self.dropping = False

    def close(self):
        for s in (self.client, self.server):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass


def client_to_server(pair):
    global publishes, cuts
    try:
        while True:
            data = pair.client.recv(65536)
            if not data:
                break
            cut = False
            if b"HPUB herald." in data:
                with lock:
                    publishes += 1
                    cut = publishes % every == 0
            if cut:
                pair.dropping = True  # the answer to this publish never reaches the client
                pair.server.sendall(data)
                time.sleep(0.5)  # the server stores the block and answers into the void
                with lock:
                    cuts += 1
                    print(f"cut {cuts}", flush=True)
                break
            pair.server.sendall(data)
    except OSError:
        pass
    pair.close()


def server_to_client(pair):
    try:
        while True:
            data = pair.server.recv(65536)
            if not data:
                break
            if not pair.dropping:
                pair.client.sendall(data)
    except OSError:
        pass
    pair.close()


listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", listen_port))
listener.listen(64)
while True:
    client, _ = listener.accept()
    try:
        server = socket.create_connection(("127.0.0.1", upstream_port))
    except OSError:
        client.close()
        continue
    pair = Pair(client, server)
    threading.Thread(target=client_to_server, args=(pair,), daemon=True).start()
    threading.Thread(target=server_to_client, args=(pair,), daemon=True).start()
