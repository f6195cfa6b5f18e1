#!/usr/bin/env python3
"""Closed-loop load on mt-serve: each of CONCURRENCY clients sends one line per request to POST /translate
(LibreTranslate's API) and sends the next when the answer comes. Prints one JSON object: sentences/s and
latency percentiles; with --output, writes the translations in input order (to compare with mt-translate's).
Standard library only; loopback only.

The clients are keep-alive connections served by one thread (a `selectors` loop that reads a socket
only when it is readable), speaking just enough HTTP/1.1 for this server's answers (Content-Length
bodies). The load generator shares the machine with the server, so what it spends is taken from the
server: threads with http.client took about 0.5 ms of CPU per request (GIL hand-overs), asyncio streams
about 0.3 ms, this loop 0.05 ms, with the requests made before the clock starts and the answers parsed
after it stops. It also prints the CPU seconds it used while the clock ran (load_generator_cpu_seconds).

Usage: serve-load.py URL LINES_FILE CONCURRENCY [--output FILE] [--source en] [--target de]
"""
import argparse
import json
import selectors
import socket
import time
import urllib.parse


def run(args, lines):
    """Sends every line once from `concurrency` keep-alive connections, each sending its next request when
    the answer to its last has come; returns the answers, latencies, errors, wall and CPU seconds."""
    url = urllib.parse.urlparse(args.url)
    # The requests are made before the clock starts, and the answers parsed after it stops.
    messages = []
    for line in lines:
        body = json.dumps({"q": line, "source": args.source, "target": args.target}).encode()
        messages.append((f"POST /translate HTTP/1.1\r\nHost: {url.hostname}:{url.port}\r\n"
                         f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body)
    replies = [None] * len(lines)
    latencies = [0.0] * len(lines)
    selector = selectors.DefaultSelector()
    next_line = 0

    def send_next(state):
        nonlocal next_line
        if state["sock"] is None:
            state["sock"] = socket.create_connection((url.hostname, url.port))
            state["sock"].setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            selector.register(state["sock"], selectors.EVENT_READ, state)
        if next_line == len(lines):
            selector.unregister(state["sock"])
            state["sock"].close()
            return False
        state["line"], state["buffer"], state["started"] = next_line, b"", time.perf_counter()
        next_line += 1
        state["sock"].sendall(messages[state["line"]])
        return True

    def reply(state):
        """The answer in the buffer, when it is whole: (status, body, close), else None."""
        head_end = state["buffer"].find(b"\r\n\r\n")
        if head_end < 0:
            return None
        head = state["buffer"][:head_end].decode("latin-1").split("\r\n")
        length, close = 0, False
        for field in head[1:]:
            name, _, value = field.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "connection" and value.strip().lower() == "close":
                close = True
        if len(state["buffer"]) < head_end + 4 + length:
            return None
        return int(head[0].split()[1]), state["buffer"][head_end + 4:head_end + 4 + length], close

    started, cpu_before = time.perf_counter(), time.process_time()
    open_connections = 0
    for _ in range(min(args.concurrency, len(lines))):
        if send_next({"sock": None}):
            open_connections += 1
    while open_connections:
        for key, _ in selector.select():
            state = key.data
            data = state["sock"].recv(65536)
            if not data:
                raise ConnectionError(f"the server closed a connection before answering line {state['line'] + 1}")
            state["buffer"] += data
            answer = reply(state)
            if answer is None:
                continue
            status, body, close = answer
            latencies[state["line"]] = time.perf_counter() - state["started"]
            replies[state["line"]] = (status, body)
            if close:
                selector.unregister(state["sock"])
                state["sock"].close()
                state["sock"] = None
            if not send_next(state):
                open_connections -= 1
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_before
    answers = [json.loads(data)["translatedText"] if status == 200 else None for status, data in replies]
    errors = [(i, status, data[:200]) for i, (status, data) in enumerate(replies) if status != 200]
    return answers, latencies, errors, seconds, cpu


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("lines")
    parser.add_argument("concurrency", type=int)
    parser.add_argument("--output")
    parser.add_argument("--source", default="en")
    parser.add_argument("--target", default="de")
    args = parser.parse_args()
    url = urllib.parse.urlparse(args.url)
    assert url.hostname in ("127.0.0.1", "localhost", "::1"), "load goes to loopback only"
    with open(args.lines, encoding="utf-8") as f:
        lines = f.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()

    answers, latencies, errors, seconds, cpu = run(args, lines)
    ordered = sorted(latencies)

    def percentile(p):
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]

    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            for answer in answers:
                f.write((answer if answer is not None else "") + "\n")
    print(json.dumps({"concurrency": args.concurrency, "sentences": len(lines), "seconds": round(seconds, 3),
                      "sentences_per_second": round(len(lines) / seconds, 2),
                      "p50_ms": round(percentile(50) * 1000, 2), "p99_ms": round(percentile(99) * 1000, 2),
                      "errors": len(errors), "load_generator_cpu_seconds": round(cpu, 3)}))


if __name__ == "__main__":
    main()
