"""Parse and lint time of a large JIL export: generates N jobs (default 10,000) and times the
parser, `autosys-bridge lint`, and both together (what `autosys-bridge parse` does: a file and
its problems).

The generated estate looks like `autorep -q` output: boxes of ten command jobs with header
lines, banner comments, quoted times, conditions with lookbacks and cross-instance references.

    .venv/bin/python bench/bench_jil_parse.py [--jobs 10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from autosys_bridge.jil.lint import Options, lint
from autosys_bridge.jil.parser import read_jil


def generate(jobs: int) -> str:
    parts = []
    for index in range(jobs):
        box, position = divmod(index, 10)
        if position == 0:
            parts.append(
                f"/* ----------------- BOX_{box:05d} ----------------- */\n\n"
                f"insert_job: BOX_{box:05d}   job_type: BOX\nowner: batch\npermission: gx,ge\n"
                f'date_conditions: 1\ndays_of_week: mo,tu,we,th,fr\nstart_times: "02:00"\n'
                f'description: "Nightly box {box}"\n\n'
            )
            continue
        condition = f"s(JOB_{index - 1:06d})" if position > 1 else f"s(UPSTREAM_{box:05d}^PRD, 24.00)"
        if position % 3 == 0:
            condition += f" & (f(JOB_{index - 2:06d}) | e(JOB_{index - 2:06d}) > 4)"
        parts.append(
            f"insert_job: JOB_{index:06d}   job_type: CMD\nbox_name: BOX_{box:05d}\n"
            f"command: /opt/app/bin/run.sh --step {index} --date $$PROCESS_DATE\n"
            f"machine: host{index % 7:02d}\nowner: batch\npermission: gx,ge\ncondition: {condition}\n"
            f"std_out_file: /var/log/app/JOB_{index:06d}.out\nstd_err_file: /var/log/app/JOB_{index:06d}.err\n"
            f"alarm_if_fail: 1\nterm_run_time: 60 /* one hour */\n"
            f'description: "Step {index}: generated"\n\n'
        )
    return "".join(parts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    text = generate(args.jobs)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "estate.jil"
        path.write_text(text)
        timings, lint_timings = [], []
        for _ in range(args.repeat):
            start = time.perf_counter()
            parsed = read_jil(path)
            timings.append(time.perf_counter() - start)
            start = time.perf_counter()
            problems = lint([parsed], Options(globals=frozenset({"PROCESS_DATE"})))
            lint_timings.append(time.perf_counter() - start)
    lines = text.count("\n")
    best = min(timings)
    totals = [parse_time + lint_time for parse_time, lint_time in zip(timings, lint_timings, strict=True)]
    print(f"jobs: {len(parsed.jobs)}  lines: {lines}  bytes: {len(text.encode())}  problems: {len(parsed.problems)}")
    print(
        f"parse time: best {best:.3f} s, mean {sum(timings) / len(timings):.3f} s over {args.repeat} runs "
        f"({len(parsed.jobs) / best:,.0f} jobs/s)"
    )
    print(
        f"lint time (after parsing): best {min(lint_timings):.3f} s over {args.repeat} runs, {len(problems)} problems"
    )
    print(f"parse + problems: best {min(totals):.3f} s, mean {sum(totals) / len(totals):.3f} s over {args.repeat} runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
