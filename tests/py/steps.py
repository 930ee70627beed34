"""The step check every py-consul script shares: print each step, stop at the first that differs from Consul."""

import sys


def check(label, got, want):
    if got != want:
        print(f"FAIL {label}: got {got!r}, want {want!r}")
        sys.exit(1)
    print(f"ok   {label}")
