#!/usr/bin/env python3
"""Start the execution client of a devnet node (the install beside this script), peered with
another node's over devp2p.

    devnet_el.py [--peer HOST:RPCPORT] --jwt PATH -- CLIENT_ARGS...

Writes the Engine API's JWT secret to PATH (32 bytes from the host's name, so the node's
consensus client reads the same) and runs the client's CLI with the devnet's genesis
(genesis.json beside this script), `--jwtSecret PATH` and CLIENT_ARGS. With --peer (another
host's JSON-RPC), it first asks that client for its enode (admin_nodeInfo) until it answers, puts
the peer's address in it (the client reports 0.0.0.0) and adds `--bootnodes ENODE`; a host named
as its own peer skips this. Python's standard library only.
"""
import hashlib
import json
import os
import socket
import sys
import time
import urllib.request


def enode_of(host, port):
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "admin_nodeInfo", "params": []}).encode()
    req = urllib.request.Request(f"http://{host}:{port}", body, {"Content-Type": "application/json"})
    while True:
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                enode = json.load(r)["result"]["enode"]
                ip = socket.gethostbyname(host)
                return enode.replace("@0.0.0.0:", f"@{ip}:")
        except (OSError, ValueError, KeyError):
            time.sleep(1)


def main(argv):
    split = argv.index("--")
    opts, args = argv[:split], argv[split + 1:]
    here = os.path.dirname(os.path.realpath(__file__))
    cli = os.path.join(here, "node_modules/@ethereumjs/client/dist/bin/cli.js")
    jwt = opts[opts.index("--jwt") + 1]
    os.makedirs(os.path.dirname(os.path.abspath(jwt)), exist_ok=True)
    with open(jwt, "w") as f:
        f.write("0x" + hashlib.sha256(socket.gethostname().encode()).hexdigest())
    program = ["/usr/bin/node", cli, "--gethGenesis", os.path.join(here, "genesis.json"), "--jwtSecret", jwt] + args
    if "--peer" in opts:
        host, port = opts[opts.index("--peer") + 1].rsplit(":", 1)
        if host != socket.gethostname():
            enode = enode_of(host, int(port))
            print(f"peer {enode}", flush=True)
            program += ["--bootnodes", enode]
    os.execv(program[0], program)


if __name__ == "__main__":
    main(sys.argv[1:])
