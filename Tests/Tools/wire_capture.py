#!/usr/bin/env python3
"""Captures the TCP traffic that crosses a Linux bridge and writes, as JSON,
every HTTP message exchanged between two nodes (not with the test host).

    wire_capture.py OUTPUT TEST_HOST

Run in the bridge's network namespace: it reads every interface there (the
bridge's ports: forwarded frames do not pass the bridge device itself), so
it sees each frame twice; a flow's segments are kept by sequence number.

Runs until SIGTERM, then reassembles each TCP flow (by sequence number),
splits it into HTTP/1.1 messages (Content-Length bodies), pairs each request
with the response that follows it on the same connection, and writes
{"exchanges": [{"path", "request", "response", "status"}], "flows": N,
"node_bytes": hex of every inter-node payload byte}. A message whose bytes
were not all captured, or a flow that is not HTTP (the region channel), is
left out and counted in "incomplete".
Used by FederationWireTests; needs root (AF_PACKET) in the bridge's namespace.
"""
import json, signal, socket, struct, sys

output, test_host = sys.argv[1], sys.argv[2]
stopped = False

def stop(*_):
    global stopped
    stopped = True

signal.signal(signal.SIGTERM, stop)
capture = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(0x0003))
capture.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 20)
capture.settimeout(0.1)
flows = {}
print("ready", flush=True)
while not stopped:
    try:
        frame = capture.recv(262144)
    except socket.timeout:
        continue
    if len(frame) < 34 or struct.unpack("!H", frame[12:14])[0] != 0x0800:
        continue
    ip = frame[14:]
    header, total = (ip[0] & 0x0F) * 4, struct.unpack("!H", ip[2:4])[0]
    if ip[9] != 6:
        continue
    source, destination = socket.inet_ntoa(ip[12:16]), socket.inet_ntoa(ip[16:20])
    if test_host in (source, destination):
        continue
    tcp = ip[header:total]
    sport, dport, seq = struct.unpack("!HHI", tcp[:8])
    payload = tcp[(tcp[12] >> 4) * 4:]
    if payload:
        flows.setdefault((source, sport, destination, dport), {})[seq] = bytes(payload)

def stream(segments):
    """The flow's bytes in order; a gap ends what can be trusted."""
    data, position = b"", None
    for seq in sorted(segments):
        segment = segments[seq]
        if position is None:
            position = seq
        if seq > position:
            break
        data += segment[position - seq:]
        position = max(position, seq + len(segment))
    return data

def messages(data):
    """(start line, body) for each complete HTTP message; and how many were cut."""
    found, cut = [], 0
    while data:
        end = data.find(b"\r\n\r\n")
        if end < 0:
            cut += 1
            break
        head = data[:end].decode("latin-1").split("\r\n")
        length = 0
        for line in head[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        body = data[end + 4:end + 4 + length]
        if len(body) < length:
            cut += 1
            break
        found.append((head[0], body))
        data = data[end + 4 + length:]
    return found, cut

exchanges, incomplete, node_bytes = [], 0, b""
for (source, sport, destination, dport), segments in flows.items():
    data = stream(segments)
    node_bytes += data
    requests, cut = messages(data)
    incomplete += cut
    if not requests or not requests[0][0].split(" ")[0].isupper() or requests[0][0].startswith("HTTP/"):
        continue
    answers, cut = messages(stream(flows.get((destination, dport, source, sport), {})))
    incomplete += cut
    for index, (line, body) in enumerate(requests):
        parts = line.split(" ")
        response = answers[index] if index < len(answers) else None
        exchanges.append({"path": parts[1] if len(parts) > 1 else "", "request": body.hex(),
                          "status": int(response[0].split(" ")[1]) if response else None,
                          "response": response[1].hex() if response else None})
with open(output, "w") as file:
    json.dump({"exchanges": exchanges, "flows": len(flows), "incomplete": incomplete, "node_bytes": node_bytes.hex()}, file)
