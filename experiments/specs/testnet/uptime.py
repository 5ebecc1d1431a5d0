#!/usr/bin/python3
"""Discovery and uptime service: nodes submit their address and height; only whitelisted keys count.

    uptime.py PORT KEY,KEY,...

POST /submit {"key", "node", "addr", "height"} -> 200, or 403 for a key not on the whitelist.
GET /active -> the nodes heard from in the last 12 s, as [{"node", "addr", "height"}].
Everything is kept in memory.
"""
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

ACTIVE_FOR = 12.0
allowed = set(sys.argv[2].split(","))
seen = {}


class Handler(BaseHTTPRequestHandler):
    def reply(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        if self.path != "/submit":
            return self.reply(404, {"error": "no such path"})
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if body.get("key") not in allowed:
            print("rejected", body.get("node"), flush=True)
            return self.reply(403, {"error": "key not whitelisted"})
        seen[body["node"]] = {"addr": body["addr"], "height": body["height"], "at": time.time()}
        print("submit", body["node"], body["height"], flush=True)
        self.reply(200, {"ok": True})

    def do_GET(self):
        if self.path != "/active":
            return self.reply(404, {"error": "no such path"})
        now = time.time()
        active = [
            {"node": n, "addr": v["addr"], "height": v["height"]}
            for n, v in sorted(seen.items())
            if now - v["at"] <= ACTIVE_FOR
        ]
        self.reply(200, active)

    def log_message(self, *args):
        pass


print("uptime service on port", sys.argv[1], "with", len(allowed), "keys", flush=True)
HTTPServer(("0.0.0.0", int(sys.argv[1])), Handler).serve_forever()
