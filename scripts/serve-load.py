#!/usr/bin/env python3
"""Closed-loop load on mt-serve: each of CONCURRENCY clients sends one line per request to POST /translate
(LibreTranslate's API) and sends the next when the answer comes. Prints one JSON object: sentences/s and
latency percentiles; with --output, writes the translations in input order (to compare with mt-translate's).
Standard library only; loopback only.

Usage: serve-load.py URL LINES_FILE CONCURRENCY [--output FILE] [--source en] [--target de]
"""
import argparse
import http.client
import json
import threading
import time
import urllib.parse


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

    answers = [None] * len(lines)
    latencies = [0.0] * len(lines)
    errors = []
    next_line = [0]
    lock = threading.Lock()

    def client():
        connection = None
        while True:
            with lock:
                i = next_line[0]
                next_line[0] += 1
            if i >= len(lines):
                return
            body = json.dumps({"q": lines[i], "source": args.source, "target": args.target})
            started = time.perf_counter()
            for attempt in range(3):
                try:
                    if connection is None:
                        connection = http.client.HTTPConnection(url.hostname, url.port, timeout=120)
                    connection.request("POST", "/translate", body, {"Content-Type": "application/json"})
                    response = connection.getresponse()
                    data = response.read()
                    if response.getheader("Connection", "").lower() == "close":
                        connection.close()
                        connection = None
                    break
                except (ConnectionError, http.client.HTTPException):
                    connection = None
                    if attempt == 2:
                        raise
            latencies[i] = time.perf_counter() - started
            if response.status != 200:
                errors.append((i, response.status, data[:200]))
            else:
                answers[i] = json.loads(data)["translatedText"]

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(args.concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - started
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
                      "errors": len(errors)}))


if __name__ == "__main__":
    main()
