#!/usr/bin/python3
"""The validator side of the shred relay: takes the IPv4 packets the relay forwards (each one a
whole packet read off the Ashburn switch's mirror port), strips the IP and UDP headers, and hands
the payload (one shred) to the validator's own TVU port.

    unwrap.py LISTEN_PORT TVU_PORT
"""
import socket
import sys

listen, tvu = int(sys.argv[1]), int(sys.argv[2])
rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
rx.bind(("0.0.0.0", listen))
tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
forwarded = 0
while True:
    packet = rx.recv(65535)
    if len(packet) < 28 or packet[0] >> 4 != 4 or packet[9] != 17:
        continue  # not an IPv4 UDP packet
    ihl = (packet[0] & 0x0F) * 4
    tx.sendto(packet[ihl + 8:], ("127.0.0.1", tvu))
    forwarded += 1
