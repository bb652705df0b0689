"""Summarize a py-spy raw (collapsed-stack) profile: the top frames by self and by total samples.

Usage: python bench/flame_summary.py PROFILE.txt [TOP]
"""

from __future__ import annotations

import sys
from collections import Counter


def main() -> None:
    path = sys.argv[1]
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 25
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            stack, _, count_text = line.rstrip("\n").rpartition(" ")
            if not count_text.isdigit():
                continue
            count = int(count_text)
            frames = stack.split(";")
            samples += count
            own[frames[-1]] += count
            for frame in set(frames):
                total[frame] += count
    print(f"{samples} samples")
    print("\n== self ==")
    for frame, count in own.most_common(top):
        print(f"{100 * count / samples:5.1f}%  {frame}")
    print("\n== total ==")
    for frame, count in total.most_common(top * 2):
        print(f"{100 * count / samples:5.1f}%  {frame}")


if __name__ == "__main__":
    main()
