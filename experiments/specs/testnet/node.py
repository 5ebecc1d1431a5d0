#!/usr/bin/python3
"""A testnet node: advances its height each second, logs it to DATADIR/node.log (kept across
restarts, so a restarted node resumes its height), serves that log over HTTP (GET /logs on
port 8081), and submits its address and height to the uptime service every 5 s.

    node.py NAME KEY UPTIME_URL DATADIR
"""
import json
import os
import signal
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer

name, key, uptime, datadir = sys.argv[1:5]
log_path = os.path.join(datadir, "node.log")
height = 0
if os.path.exists(log_path):
    for line in open(log_path):
        if line.startswith("height="):
            height = int(line.split()[0].split("=")[1])
log = open(log_path, "a")


class Logs(BaseHTTPRequestHandler):
    def do_GET(self):
        log.flush()
        data = open(log_path, "rb").read() if self.path == "/logs" else b""
        self.send_response(200 if self.path == "/logs" else 404)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


server = HTTPServer(("0.0.0.0", 8081), Logs)
threading.Thread(target=server.serve_forever, daemon=True).start()
stopping = []
signal.signal(signal.SIGTERM, lambda *a: stopping.append(1))
print(name, "up at height", height, flush=True)
tick = 0
while not stopping:
    time.sleep(1)
    height += 1
    tick += 1
    log.write("height=%d at=%.3f\n" % (height, time.time()))
    log.flush()
    if tick % 5 == 0:
        body = json.dumps({"key": key, "node": name, "addr": os.environ["NODE_IP"], "height": height}).encode()
        req = urllib.request.Request(uptime + "/submit", data=body, headers={"Content-Type": "application/json"})
        try:
            urllib.request.urlopen(req, timeout=2).read()
            print("submitted height", height, flush=True)
        except Exception as e:
            print("submit failed:", e, flush=True)
print(name, "stopping at height", height, flush=True)
