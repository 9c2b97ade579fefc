"""Where a training run's time goes on the CPU: the real `progan_tf.train` command, profiled
for a window of its steady steps.

    python benchmarks/profile_step.py --start=90 --seconds=20 -- \\
        --run_dir=/tmp/prof --config.progressive=False --config.total_kimg=32

runs the train command in this process with the flags after `--`, starts TensorFlow's
profiler `--start` seconds in, stops it `--seconds` later, and when the run has ended reads
the trace (the XSpace protobuf in `--trace_dir`, no TensorBoard plug-in needed) and prints,
per host thread that did work, its busy time in the window and the events that took it, each
event's own time (nested events subtracted): on the main thread the compiled step's call; on
TensorFlow's executor threads the waits for the XLA clusters (`BlockUntilReady`, the loss +
gradient functions) apart from the ops outside them (Adam's and EMA's updates, the reals' fade,
noise, the loop), on tf.data's threads the input stream, on the intra-op threads XLA's thunks.
Pick `--start` past the phase's first step (the log's "first step" column); the profiler
itself slows the steps in its window, so read shares, not rates.
"""

from __future__ import annotations

import argparse
import collections
import glob
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from progan_tf import cli  # noqa: E402

cli.tune_tensorflow()
cli.quiet_tensorflow()

import tensorflow as tf  # noqa: E402
from absl import app  # noqa: E402
from tensorflow.tsl.profiler.protobuf import xplane_pb2  # noqa: E402

from progan_tf import train  # noqa: E402


def self_times(events) -> collections.Counter:
    """Seconds per event name on one thread, each event's own time (its duration minus the
    events nested in it), so that nothing is counted twice."""
    own = collections.Counter()
    stack = []
    for offset, duration, name in sorted(events, key=lambda e: (e[0], -e[1])):
        while stack and offset >= stack[-1][0] + stack[-1][1]:
            stack.pop()
        if stack:
            own[stack[-1][2]] -= duration
        own[name] += duration
        stack.append((offset, duration, name))
    return collections.Counter({name: ps / 1e12 for name, ps in own.items()})


def summarize(trace_dir: str, window_s: float, top: int = 8) -> str:
    paths = sorted(glob.glob(os.path.join(trace_dir, "**", "*.xplane.pb"), recursive=True))
    if not paths:
        raise SystemExit(f"profile_step: no *.xplane.pb under {trace_dir}")
    space = xplane_pb2.XSpace()
    with open(paths[-1], "rb") as f:
        space.ParseFromString(f.read())
    lines = [f"trace {paths[-1]} ({window_s:.0f} s window); per thread, own time by event:"]
    for plane in space.planes:
        if not plane.name.startswith("/host"):
            continue
        names = {k: v.name for k, v in plane.event_metadata.items()}
        threads = []
        for line in plane.lines:
            events = [
                (e.offset_ps, e.duration_ps, names.get(e.metadata_id, "?")) for e in line.events
            ]
            own = self_times(events)
            if sum(own.values()) >= 0.01 * window_s:
                threads.append((line.display_name or line.name, own))
        for thread, own in sorted(threads, key=lambda t: -sum(t[1].values())):
            busy = sum(own.values())
            lines.append(f"\n{thread}: {busy:.2f} s ({100 * busy / window_s:.0f} % of the window)")
            for name, seconds in own.most_common(top):
                lines.append(f"  {seconds:8.3f} s  {100 * seconds / busy:5.1f} %  {name[:90]}")
    return "\n".join(lines)


def main():
    argv = sys.argv[1:]
    train_args = argv[argv.index("--") + 1 :] if "--" in argv else []
    own = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--start", type=float, default=90.0, help="seconds into the run")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the window")
    parser.add_argument("--trace_dir", default="/tmp/progan_profile")
    parser.add_argument(
        "--read", action="store_true", help="only summarize the trace already in --trace_dir"
    )
    args = parser.parse_args(own)
    if args.read:
        print(summarize(args.trace_dir, args.seconds))
        return
    if os.path.exists(args.trace_dir) and os.listdir(args.trace_dir):
        raise SystemExit(f"profile_step: --trace_dir={args.trace_dir} is not empty")

    def window():
        time.sleep(args.start)
        print(f"profile_step: profiling {args.seconds:.0f} s", flush=True)
        tf.profiler.experimental.start(args.trace_dir)
        time.sleep(args.seconds)
        tf.profiler.experimental.stop()
        print("profile_step: profile written", flush=True)

    profiler = threading.Thread(target=window)
    profiler.start()
    try:
        app.run(train.main, argv=["progan_tf.train", *train_args])
    except SystemExit:
        pass
    profiler.join()
    print(summarize(args.trace_dir, args.seconds))


if __name__ == "__main__":
    main()
