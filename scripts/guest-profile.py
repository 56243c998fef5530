#!/usr/bin/env python3
"""Statistical profiler for a QEMU guest (TCG or KVM), through QEMU's gdb stub.

Guests have no perf here (no PMU under TCG). This samples instead: it
connects to the gdb stub (start QEMU with -s, e.g. MARUFS_QEMU_ARGS=-s for
qemu/run-guest.sh), and in a loop lets the guest run for INTERVAL, stops
it, reads every vCPU's instruction pointer, and resumes. On exit (the guest
is gone, or --seconds passed) it prints the hottest functions, symbolized
with the kernel's System.map and, for module code, /proc/kallsyms lines of
the module as the guest printed them (`grep '\\[marufs\\]' /proc/kallsyms`,
found in --kallsyms FILE, e.g. the guest's serial log).

    scripts/guest-profile.py --system-map KDIR/System.map --kallsyms LOG [--port 1234]

Samples in the idle loop are counted apart. Stopping the guest perturbs its
timing (guest clocks keep running); use it for where time goes, not how much.
"""
import argparse
import bisect
import collections
import re
import socket
import sys
import time


def checksum(data: bytes) -> bytes:
    return b"%02x" % (sum(data) & 0xFF)


class Stub:
    def __init__(self, port: int, wait: float):
        deadline = time.time() + wait
        while True:
            try:
                self.s = socket.create_connection(("127.0.0.1", port), timeout=60)
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.2)
        self.buf = b""
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.s.settimeout(2)

    def _read(self, stopping: bool = False) -> bytes:
        try:
            chunk = self.s.recv(65536)
        except socket.timeout:
            if not stopping:
                raise
            # A stop request can cross the resume on the wire: ask again.
            self.s.sendall(b"\x03")
            return b""
        if not chunk:
            raise EOFError
        return chunk

    def packet(self, stopping: bool = False) -> bytes:
        """Next packet's payload (acks skipped, acked)."""
        while True:
            m = re.search(rb"\$([^#]*)#..", self.buf)
            if m:
                self.buf = self.buf[m.end():]
                self.s.sendall(b"+")
                return m.group(1)
            self.buf += self._read(stopping)

    def send(self, payload: bytes) -> None:
        self.s.sendall(b"$" + payload + b"#" + checksum(payload))

    def cmd(self, payload: bytes) -> bytes:
        self.send(payload)
        return self.packet()


def load_symbols(system_map: str, kallsyms: str | None):
    syms = []
    for path, pat in ((system_map, None), (kallsyms, "[marufs]")):
        if not path:
            continue
        with open(path, errors="replace") as f:
            for line in f:
                p = line.split()
                if p and p[0] == "KSYM":  # as the guest scripts print them
                    p = p[1:]
                if len(p) < 3 or p[1].lower() not in ("t", "w"):
                    continue
                if pat and pat not in line:
                    continue
                try:
                    a = int(p[0], 16)
                except ValueError:
                    continue
                if a:
                    syms.append((a, p[2]))
    syms.sort()
    return [a for a, _ in syms], [n for _, n in syms]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=1234)
    ap.add_argument("--interval", type=float, default=0.004, help="seconds the guest runs between samples")
    ap.add_argument("--seconds", type=float, default=3600)
    ap.add_argument("--wait", type=float, default=120, help="seconds to wait for the stub")
    ap.add_argument("--system-map", required=True)
    ap.add_argument("--kallsyms")
    ap.add_argument("--top", type=int, default=40)
    ap.add_argument("--raw", help="also write every sample's address here")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args()

    stub = Stub(a.port, a.wait)
    stub.s.sendall(b"+")
    stub.cmd(b"?")
    pcs = []
    end = time.time() + a.seconds
    try:
        while time.time() < end:
            stub.send(b"c")
            time.sleep(a.interval)
            stub.s.sendall(b"\x03")
            stub.packet(stopping=True)  # the stop reply
            threads = []
            r = stub.cmd(b"qfThreadInfo")
            while r.startswith(b"m"):
                threads += r[1:].split(b",")
                r = stub.cmd(b"qsThreadInfo")
            for t in threads:
                stub.cmd(b"Hg" + t)
                v = stub.cmd(b"p10")
                if len(v) == 16:
                    pcs.append(int.from_bytes(bytes.fromhex(v.decode()), "little"))
            if a.verbose and len(pcs) % 500 < len(threads):
                print(f"guest-profile: {len(pcs)} samples", file=sys.stderr, flush=True)
    except (EOFError, OSError, KeyboardInterrupt) as e:
        print(f"guest-profile: stopped sampling: {e!r}", file=sys.stderr)
    try:
        # Leave the guest running (detach resumes it).
        stub.send(b"D")
    except OSError:
        pass

    addrs, names = load_symbols(a.system_map, a.kallsyms)
    if a.raw:
        with open(a.raw, "w") as f:
            f.writelines("%x\n" % pc for pc in pcs)
    counts = collections.Counter()
    for pc in pcs:
        i = bisect.bisect_right(addrs, pc) - 1
        counts[names[i] if i >= 0 else "?"] += 1
    idle = {"default_idle", "pv_native_safe_halt", "native_safe_halt", "default_idle_call",
            "cpuidle_idle_call", "do_idle", "arch_cpu_idle", "acpi_safe_halt", "acpi_idle_do_entry"}
    busy = sum(c for n, c in counts.items() if n not in idle)
    print(f"guest-profile: {len(pcs)} samples, {busy} not idle")
    for n, c in counts.most_common():
        if n in idle:
            continue
        if a.top <= 0:
            break
        a.top -= 1
        print(f"{100.0 * c / max(busy, 1):6.2f}% {c:7d}  {n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
