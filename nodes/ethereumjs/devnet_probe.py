#!/usr/bin/env python3
"""Watch one devnet node: each period, its beacon head and finality (Lodestar's REST API) and its
execution head (the client's JSON-RPC), one JSON line each time.

    devnet_probe.py BEACON_URL EL_RPC_URL PERIOD_S COUNT

A line: time, beacon head slot, the head block's execution payload (number, hash, transactions),
finalized epoch, and the execution client's latest block (number, hash, transactions).
"""
import json
import sys
import time
import urllib.request


def get(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.load(r)


def rpc(url, method, params):
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.load(r)["result"]


def sample(beacon, el):
    line = {"t": round(time.time(), 3)}
    try:
        block = get(f"{beacon}/eth/v2/beacon/blocks/head")["data"]["message"]
        payload = block["body"].get("execution_payload", {})
        line["slot"] = int(block["slot"])
        line["payload_number"] = int(payload.get("block_number", 0))
        line["payload_hash"] = payload.get("block_hash")
        line["payload_txs"] = len(payload.get("transactions", []))
        fin = get(f"{beacon}/eth/v1/beacon/states/head/finality_checkpoints")["data"]
        line["finalized_epoch"] = int(fin["finalized"]["epoch"])
    except (OSError, ValueError, KeyError) as e:
        line["beacon_error"] = type(e).__name__
    try:
        head = rpc(el, "eth_getBlockByNumber", ["latest", False])
        line["el_number"] = int(head["number"], 16)
        line["el_hash"] = head["hash"]
        line["el_txs"] = len(head["transactions"])
        line["el_peers"] = int(rpc(el, "net_peerCount", []), 16)
    except (OSError, ValueError, KeyError, TypeError) as e:
        line["el_error"] = type(e).__name__
    return line


def main(beacon, el, period, count):
    for _ in range(int(count)):
        print(json.dumps(sample(beacon, el)), flush=True)
        time.sleep(float(period))


if __name__ == "__main__":
    main(*sys.argv[1:])
