#!/usr/bin/python3
"""Log fetcher: every 10 s asks the uptime service for the active nodes and pulls each one's log
over HTTP into an SQLite database, DB, with tables polls(at, active) and lines(node, height,
line, fetched_at).

    fetch.py UPTIME_URL DB
"""
import json
import sqlite3
import sys
import time
import urllib.request

uptime, path = sys.argv[1:3]
db = sqlite3.connect(path)
db.execute("CREATE TABLE IF NOT EXISTS polls (at REAL, active TEXT)")
db.execute("CREATE TABLE IF NOT EXISTS lines (node TEXT, height INTEGER, line TEXT, fetched_at REAL, PRIMARY KEY (node, height))")
db.commit()
while True:
    time.sleep(10)
    now = time.time()
    try:
        active = json.load(urllib.request.urlopen(uptime + "/active", timeout=2))
    except Exception as e:
        print("uptime service unreachable:", e, flush=True)
        continue
    db.execute("INSERT INTO polls VALUES (?, ?)", (now, ",".join(a["node"] for a in active)))
    for a in active:
        try:
            text = urllib.request.urlopen("http://%s:8081/logs" % a["addr"], timeout=2).read().decode()
        except Exception as e:
            print("fetching", a["node"], "failed:", e, flush=True)
            continue
        rows = [(a["node"], int(l.split()[0].split("=")[1]), l, now) for l in text.splitlines() if l.startswith("height=")]
        db.executemany("INSERT OR IGNORE INTO lines VALUES (?, ?, ?, ?)", rows)
        print("fetched", a["node"], len(rows), "lines", flush=True)
    db.commit()
