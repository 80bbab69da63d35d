#!/usr/bin/env python3
"""A TCP proxy that adds a fixed one-way delay without limiting bandwidth (a "WAN" for
tests/bench/run). Standard library only.

Every chunk read from one side is stamped with its arrival time and written to the other
side at arrival + delay, in order: one queue and one sender thread per direction, so a
large transfer is shifted by the delay, not slowed down (nothing waits for an
acknowledgement; up to MAX_QUEUED bytes may be in flight per direction, which at a 20 ms
delay only throttles beyond ~3 GB/s). An end of stream (FIN) is forwarded with the same
delay as a half-close; when both directions have ended, or an error hits either side,
both sockets are closed. Each connection uses four threads; any number of connections
may be open at once.

    python3 tests/bench/delay_proxy.py serve --target-port 993 [--delay-ms 20]
        prints "port N" once it listens on 127.0.0.1:N, runs until killed
    python3 tests/bench/delay_proxy.py selftest [--delay-ms 20] [--mbytes 50]
        measures round trips and bulk transfers directly and through the proxy
"""

import argparse
import collections
import socket
import sys
import threading
import time

MAX_QUEUED = 64 << 20  # bytes per direction waiting for their due time
CHUNK = 256 << 10
LINGER_AFTER_EOF = 30.0  # seconds a half-closed connection may stay open before it is cut


def _nodelay(s):
    try:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        pass


class _Direction:
    """src -> dst, each chunk delivered at its arrival time + delay."""

    def __init__(self, conn, src, dst, delay):
        self.conn, self.src, self.dst, self.delay = conn, src, dst, delay
        self.queue = collections.deque()  # (due, bytes or None for end of stream)
        self.queued = 0
        self.cond = threading.Condition()
        self.done = False  # the sender has finished (forwarded EOF or failed)

    def reader(self):
        try:
            while True:
                data = self.src.recv(CHUNK)
                due = time.monotonic() + self.delay
                with self.cond:
                    if not data:
                        self.queue.append((due, None))
                        self.cond.notify_all()
                        return
                    while self.queued > MAX_QUEUED and not self.conn.closed:
                        self.cond.wait(0.5)
                    if self.conn.closed:
                        return
                    self.queue.append((due, data))
                    self.queued += len(data)
                    self.cond.notify_all()
        except OSError:
            self.conn.close()  # reset or closed by us: the connection is over

    def sender(self):
        try:
            while True:
                with self.cond:
                    while not self.queue and not self.conn.closed:
                        self.cond.wait(0.5)
                    if self.conn.closed:
                        return
                    due, data = self.queue[0]
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                with self.cond:
                    self.queue.popleft()
                    if data is not None:
                        self.queued -= len(data)
                        self.cond.notify_all()
                if data is None:
                    try:
                        self.dst.shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
                    return
                self.dst.sendall(data)
        except OSError:
            self.conn.close()
        finally:
            self.done = True
            self.conn.direction_done()


class _Connection:
    def __init__(self, proxy, client, server, delay):
        self.proxy, self.client, self.server = proxy, client, server
        self.closed = False
        self.lock = threading.Lock()
        self.dirs = [_Direction(self, client, server, delay), _Direction(self, server, client, delay)]
        self.timer = None

    def start(self):
        for d in self.dirs:
            for fn in (d.reader, d.sender):
                threading.Thread(target=fn, daemon=True).start()

    def direction_done(self):
        if all(d.done for d in self.dirs):
            self.close()
        elif self.timer is None and not self.closed:
            self.timer = threading.Timer(LINGER_AFTER_EOF, self.close)
            self.timer.daemon = True
            self.timer.start()

    def close(self):
        with self.lock:
            if self.closed:
                return
            self.closed = True
        if self.timer is not None:
            self.timer.cancel()
        for s in (self.client, self.server):
            try:
                s.shutdown(socket.SHUT_RDWR)  # wakes a reader blocked in recv
            except OSError:
                pass
            s.close()
        for d in self.dirs:
            with d.cond:
                d.cond.notify_all()
        self.proxy.forget(self)


class DelayProxy:
    """Listens on 127.0.0.1:port (0 = a free one) and forwards to target with `delay`
    seconds added in each direction."""

    def __init__(self, target_host, target_port, delay=0.020, port=0):
        self.target = (target_host, target_port)
        self.delay = delay
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", port))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.conns = set()
        self.lock = threading.Lock()
        self.accepted = 0
        self.stopped = False
        self.thread = threading.Thread(target=self._accept_loop, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def _accept_loop(self):
        while not self.stopped:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target, timeout=10)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            _nodelay(client)
            _nodelay(server)
            conn = _Connection(self, client, server, self.delay)
            with self.lock:
                self.conns.add(conn)
                self.accepted += 1
            conn.start()

    def forget(self, conn):
        with self.lock:
            self.conns.discard(conn)

    def stop(self):
        self.stopped = True
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        with self.lock:
            conns = list(self.conns)
        for c in conns:
            c.close()


# ---------------------------------------------------------------- self-test


def _serve(handler):
    """A throwaway TCP server on 127.0.0.1 calling handler(sock) per connection."""
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(16)

    def loop():
        while True:
            try:
                s, _ = ls.accept()
            except OSError:
                return
            _nodelay(s)
            threading.Thread(target=handler, args=(s,), daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()
    return ls, ls.getsockname()[1]


def _echo(s):
    with s:
        while True:
            d = s.recv(CHUNK)
            if not d:
                return
            s.sendall(d)


def _bulk(s):
    """'S n\\n': sends n bytes then closes; 'R n\\n': reads n bytes, answers 'ok\\n'."""
    with s:
        f = s.makefile("rb")
        line = f.readline().split()
        op, n = line[0], int(line[1])
        if op == b"S":
            block = b"x" * CHUNK
            left = n
            while left:
                k = min(left, len(block))
                s.sendall(block[:k])
                left -= k
        else:
            left = n
            while left:
                d = f.read1(min(left, CHUNK))
                if not d:
                    return
                left -= len(d)
            s.sendall(b"ok\n")


def _ping(port, n=40, size=100):
    with socket.create_connection(("127.0.0.1", port)) as s:
        _nodelay(s)
        msg = b"p" * size
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            s.sendall(msg)
            got = 0
            while got < size:
                got += len(s.recv(size - got))
            times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2], times[-1]


def _download(port, nbytes):
    """Server -> client: seconds from the request to the last byte."""
    with socket.create_connection(("127.0.0.1", port)) as s:
        _nodelay(s)
        t0 = time.perf_counter()
        s.sendall(b"S %d\n" % nbytes)
        got = 0
        while True:
            d = s.recv(CHUNK)
            if not d:
                break
            got += len(d)
        dt = time.perf_counter() - t0
    assert got == nbytes, (got, nbytes)
    return dt


def _upload(port, nbytes):
    """Client -> server: seconds from the first byte to the server's acknowledgement."""
    with socket.create_connection(("127.0.0.1", port)) as s:
        _nodelay(s)
        block = b"y" * CHUNK
        t0 = time.perf_counter()
        s.sendall(b"R %d\n" % nbytes)
        left = nbytes
        while left:
            k = min(left, len(block))
            s.sendall(block[:k])
            left -= k
        assert s.recv(16) == b"ok\n"
        return time.perf_counter() - t0


def selftest(delay, mbytes):
    nbytes = int(mbytes * 1_000_000)
    ok = True
    echo_ls, echo_port = _serve(_echo)
    bulk_ls, bulk_port = _serve(_bulk)
    p_echo = DelayProxy("127.0.0.1", echo_port, delay).start()
    p_bulk = DelayProxy("127.0.0.1", bulk_port, delay).start()
    rtt = 2 * delay

    d_med, d_max = _ping(echo_port)
    p_med, p_max = _ping(p_echo.port)
    extra = p_med - d_med
    good = abs(extra - rtt) < 0.004
    ok &= good
    print(f"round trip, 100 bytes: direct median {d_med * 1000:.2f} ms (max {d_max * 1000:.2f}), via proxy "
          f"median {p_med * 1000:.2f} ms (max {p_max * 1000:.2f}): +{extra * 1000:.2f} ms, expected "
          f"+{rtt * 1000:.0f} ms {'OK' if good else 'WRONG'}")

    for name, fn in (("download (server -> client)", _download), ("upload (client -> server)", _upload)):
        fn(bulk_port, nbytes // 10)  # warm up
        direct = min(fn(bulk_port, nbytes) for _ in range(2))
        proxied = min(fn(p_bulk.port, nbytes) for _ in range(2))
        # Through the proxy a transfer costs one extra round trip (request and answer each
        # delayed) plus the proxy's copying; anything beyond 1.5x + rtt means a bandwidth limit.
        good = proxied <= 1.5 * direct + rtt + 0.05
        ok &= good
        print(f"{name}, {mbytes:g} MB: direct {direct:.3f} s ({mbytes / direct:.0f} MB/s), via proxy "
              f"{proxied:.3f} s ({mbytes / proxied:.0f} MB/s), {proxied - direct:+.3f} s "
              f"{'OK' if good else 'TOO SLOW'}")

    # Four connections at once: each keeps its latency and gets its bytes.
    results = {}

    def worker(i):
        results[i] = (_ping(p_echo.port, n=20), _download(p_bulk.port, nbytes // 4))

    t0 = time.perf_counter()
    ths = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    wall = time.perf_counter() - t0
    meds = [results[i][0][0] for i in range(4)]
    good = len(results) == 4 and all(abs(m - rtt) < 0.006 for m in meds)
    ok &= good
    print(f"4 connections at once: round-trip medians {', '.join(f'{m * 1000:.1f}' for m in meds)} ms, "
          f"4 x {mbytes / 4:g} MB downloads, {wall:.2f} s in all {'OK' if good else 'WRONG'}")

    time.sleep(0.2)
    leaked = len(p_echo.conns) + len(p_bulk.conns)
    ok &= leaked == 0
    print(f"connections still open in the proxies after the clients closed: {leaked} {'OK' if not leaked else 'WRONG'}")
    for p in (p_echo, p_bulk):
        p.stop()
    echo_ls.close()
    bulk_ls.close()
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sv = sub.add_parser("serve")
    sv.add_argument("--target-host", default="127.0.0.1")
    sv.add_argument("--target-port", type=int, required=True)
    sv.add_argument("--port", type=int, default=0, help="listening port on 127.0.0.1 (default: a free one)")
    sv.add_argument("--delay-ms", type=float, default=20.0, help="one-way delay (default 20)")
    st = sub.add_parser("selftest")
    st.add_argument("--delay-ms", type=float, default=20.0)
    st.add_argument("--mbytes", type=float, default=50.0)
    args = ap.parse_args()
    if args.cmd == "selftest":
        sys.exit(0 if selftest(args.delay_ms / 1000, args.mbytes) else 1)
    proxy = DelayProxy(args.target_host, args.target_port, args.delay_ms / 1000, args.port).start()
    print(f"port {proxy.port}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        proxy.stop()


if __name__ == "__main__":
    main()
