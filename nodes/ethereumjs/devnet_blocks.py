#!/usr/bin/env python3
"""Per slot of a cl-el-devnet run: who proposed, the block's execution number, how many
transactions it carried, and when in the slot Lodestar published it (payload asked of and built
by its execution client, block signed and sent: Engine API round trips on the loopback, since
computing takes no simulated time), from the run's `direct_logs.arrow` (polars). ethereumjs logs
the payloads it imports in batches every few seconds, so its lines do not time imports.

    devnet_blocks.py OUT_DIR [GENESIS_S [SLOT_S]]

GENESIS_S is the chain's genesis in simulated seconds (20 in the spec), SLOT_S its slot (6).
"""
import json
import sys

import polars as pl


def main(out, genesis_s=20.0, slot_s=6.0):
    logs = pl.read_ipc(f"{out}/direct_logs.arrow")
    genesis, slot = int(float(genesis_s) * 1e9), int(float(slot_s) * 1e9)
    published = (
        logs.filter(pl.col("process").str.starts_with("lodestar") & pl.col("line").str.contains("Published block"))
        .with_columns(
            slot=pl.col("line").str.extract(r"slot=(\d+)").cast(pl.Int64),
            txs=pl.col("line").str.extract(r"transactions=(\d+)").cast(pl.Int64),
        )
        .select("slot", pl.col("host_name").alias("proposer"), "txs", pl.col("time_ns").alias("published_ns"))
    )
    # The probes' lines give each slot's payload number (the block number the execution clients log).
    probes = logs.filter(pl.col("process").str.starts_with("devnet_probe")).get_column("line").to_list()
    numbers = {}
    for line in probes:
        p = json.loads(line)
        if "slot" in p and p.get("payload_number"):
            numbers[p["slot"]] = p["payload_number"]
    by_number = pl.DataFrame({"slot": list(numbers), "number": list(numbers.values())}, schema={"slot": pl.Int64, "number": pl.Int64})
    table = (
        published.join(by_number, on="slot")
        .with_columns(published_ms=(pl.col("published_ns") - genesis - pl.col("slot") * slot) / 1e6)
        .select("slot", "number", "proposer", "txs", "published_ms")
        .sort("slot")
    )
    with pl.Config(tbl_rows=-1):
        print(table)


if __name__ == "__main__":
    main(*sys.argv[1:])
