#!/usr/bin/python3
"""Drives an execution client through the Engine API as a consensus client would, over HTTP
with a JWT (HS256) from the shared secret, and prints what it saw, one JSON object per line:
the capabilities, an unauthenticated call's HTTP status, then one Capella block built and
imported (forkchoiceUpdatedV2 with payload attributes and one withdrawal, getPayloadV2,
newPayloadV2, forkchoiceUpdatedV2 to it), then the head's number and the withdrawal's balance
from the JSON-RPC port.

    engine_client.py HOST ENGINE_PORT RPC_PORT JWT_HEX_FILE
"""
import base64, hashlib, hmac, json, sys, time, urllib.error, urllib.request

host, engine, rpc, secret_file = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
secret = bytes.fromhex(open(secret_file).read().strip().removeprefix("0x"))


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=")


def token():
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = b64(json.dumps({"iat": int(time.time())}).encode())
    sig = b64(hmac.new(secret, head + b"." + claims, hashlib.sha256).digest())
    return (head + b"." + claims + b"." + sig).decode()


def call(port, method, params, auth=True):
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    headers = {"Content-Type": "application/json"}
    if auth:
        headers["Authorization"] = "Bearer " + token()
    req = urllib.request.Request(f"http://{host}:{port}", body, headers)
    try:
        return json.load(urllib.request.urlopen(req, timeout=30))
    except urllib.error.HTTPError as e:
        return {"http": e.code}


def show(**kv):
    print(json.dumps(kv), flush=True)


wanted = ["engine_newPayloadV2", "engine_forkchoiceUpdatedV2", "engine_getPayloadV2"]
show(capabilities=call(engine, "engine_exchangeCapabilities", [wanted])["result"])
show(unauthenticated=call(engine, "engine_exchangeCapabilities", [wanted], auth=False).get("http"))
genesis = call(rpc, "eth_getBlockByNumber", ["latest", False])["result"]
withdrawal = {"index": "0x0", "validatorIndex": "0x1", "address": "0x" + "33" * 20, "amount": "0x3b9aca00"}
attrs = {
    "timestamp": hex(int(genesis["timestamp"], 16) + 12),
    "prevRandao": "0x" + "11" * 32,
    "suggestedFeeRecipient": "0x" + "22" * 20,
    "withdrawals": [withdrawal],
}
state = {"headBlockHash": genesis["hash"], "safeBlockHash": genesis["hash"], "finalizedBlockHash": genesis["hash"]}
started = call(engine, "engine_forkchoiceUpdatedV2", [state, attrs])["result"]
show(forkchoice=started["payloadStatus"]["status"], payload_id=started["payloadId"] is not None)
payload = call(engine, "engine_getPayloadV2", [started["payloadId"]])["result"]["executionPayload"]
show(built=int(payload["blockNumber"], 16), withdrawals=payload["withdrawals"])
show(new_payload=call(engine, "engine_newPayloadV2", [payload])["result"]["status"])
head = dict(state, headBlockHash=payload["blockHash"], safeBlockHash=payload["blockHash"])
show(head=call(engine, "engine_forkchoiceUpdatedV2", [head, None])["result"]["payloadStatus"]["status"])
show(
    number=int(call(rpc, "eth_blockNumber", [])["result"], 16),
    balance=int(call(rpc, "eth_getBalance", [withdrawal["address"], "latest"])["result"], 16),
)
