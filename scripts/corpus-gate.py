#!/usr/bin/env python3
"""Fail unless a score.py summary meets issue 5's thresholds on the manifest-edit
corpus: success 100%, minimal (no extra changed line) >= 99%, no comment lost,
no key moved. Usage: corpus-gate.py SUMMARY.json"""
import json
import sys

s = json.load(open(sys.argv[1]))
checks = [
    ("success rate", s["success_rate"], lambda v: v == 1.0, "== 1.0"),
    ("minimal rate", s["minimal_rate"], lambda v: v >= 0.99, ">= 0.99"),
    ("comments lost", s["comments_lost_total"], lambda v: v == 0, "== 0"),
    ("key-order violation cases", s["order_violation_cases"], lambda v: v == 0, "== 0"),
]
bad = 0
for name, value, ok, want in checks:
    mark = "ok  " if ok(value) else "FAIL"
    bad += not ok(value)
    print(f"{mark} {name}: {value} (want {want})")
print(f"{s['cases']} cases, {s['produced']} produced, {s['success']} succeeded")
sys.exit(1 if bad else 0)
