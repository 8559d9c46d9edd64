#!/usr/bin/env python3
"""Measures what including multiproc costs a user's compile.

    python3 bench/compile_time.py [--runs 7] [--compiler c++] [--build-dir build/default]
                                  [--include-dir include] [--per-header] [--before DIR]
                                  [--std-only] [--memory]

Compiles small programs against the source tree's include/ directory with the flags the
library itself is built with (read from the build directory's compile_commands.json when there
is one, else -O2 -g -DNDEBUG -std=c++20), each --runs times, and prints the median wall time
of each and the number of lines its preprocessed form has:

    baseline   a one-line program including <vector> and <string>
    umbrella   a one-line program including <multiproc/multiproc.hpp>
    pool_map   one Pool::map call (the seed's square example)
    std_only   (--std-only) only the standard and system headers that multiproc's headers
               include themselves: what the umbrella costs before a line of multiproc is parsed

Runs are interleaved (baseline, umbrella, pool_map, baseline, ...) so that load from other
processes falls on all of them alike. Both the wall time and the CPU time (user + system) of
the compiler are given: on a machine busy with other work the CPU time is the steadier figure. --per-header adds one row per public header (a program
including only it), to see which header costs what. --include-dir measures another tree's
headers (a checkout of an older commit, for a before/after in one sitting). --before DIR adds
a `before` row of each program compiled against DIR's headers, interleaved with the others: the
fairest before/after on a machine whose load changes from one minute to the next. --memory adds
the memory g++ allocates for each program (its -ftime-report TOTAL, and the part spent on
template instantiation): unlike the timings it does not move with the load, and it follows the
instantiation work a change adds or removes.
"""

import argparse
import json
import os
import re
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEFAULT_FLAGS = ["-O2", "-g", "-DNDEBUG", "-std=c++20"]

PROGRAMS = {
    "baseline": "#include <vector>\n#include <string>\nint main() { return 0; }\n",
    "umbrella": "#include <multiproc/multiproc.hpp>\nint main() { return 0; }\n",
    "pool_map": (
        "#include <multiproc/multiproc.hpp>\n"
        "#include <vector>\n"
        "int square(int x) { return x * x; }\n"
        "int main(int argc, char** argv) {\n"
        "    mp::init(argc, argv);\n"
        "    mp::Pool pool(2);\n"
        "    std::vector<int> r = pool.map(square, std::vector<int>{1, 2, 3, 4});\n"
        "    return r[3] == 16 ? 0 : 1;\n"
        "}\n"
    ),
}


def library_flags(build_dir):
    """The code-generation flags of the library's own compile of src/pool.cpp."""
    path = os.path.join(build_dir, "compile_commands.json")
    try:
        with open(path) as f:
            commands = json.load(f)
    except OSError:
        return DEFAULT_FLAGS
    for c in commands:
        if c["file"].endswith("src/pool.cpp"):
            args = shlex.split(c["command"])[1:]
            keep = []
            skip = False
            for a in args:
                if skip:
                    skip = False
                    continue
                if a in ("-o", "-c"):
                    skip = True
                    continue
                if a.startswith(("-I", "-W", "-f")):  # includes and diagnostics are ours
                    continue
                keep.append(a)
            return keep
    return DEFAULT_FLAGS


INCLUDE = os.path.join(ROOT, "include")


def std_only_program(cxx, flags, include):
    """A program including exactly the headers outside include/ that the umbrella's own headers
    include (the first level below a multiproc header, from `-H`), in the order met."""
    src = "#include <multiproc/multiproc.hpp>\n"
    out = subprocess.run([cxx, *flags, "-I", include, "-H", "-fsyntax-only", "-x", "c++", "-"],
                         input=src, capture_output=True, text=True, check=True).stderr
    stack, seen = [], []
    mine = os.path.join(include, "")
    for line in out.splitlines():
        dots, _, path = line.partition(" ")
        if not dots or dots.strip(".") or not path:
            continue
        depth = len(dots)
        del stack[depth - 1:]
        parent = stack[-1] if stack else mine
        if parent.startswith(mine) and not path.startswith(mine) and path not in seen:
            seen.append(path)
        stack.append(path)
    return "".join('#include "%s"\n' % h for h in seen) + "int main() { return 0; }\n"


def compile_once(cxx, flags, src, out, include):
    """Wall time and CPU time (user + system, of the compiler and its children) of one compile."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([cxx, *flags, "-I", include, "-c", src, "-o", out],
                   check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def preprocessed_lines(cxx, flags, src, include):
    out = subprocess.run([cxx, *flags, "-I", include, "-E", src],
                         check=True, capture_output=True, text=True).stdout
    return out.count("\n")


def gcc_memory(cxx, flags, src, out, include):
    """g++'s garbage-collected memory for one compile, in MB: (total, template instantiation),
    from -ftime-report; None when the compiler does not report it."""
    err = subprocess.run([cxx, *flags, "-I", include, "-c", src, "-o", out, "-ftime-report"],
                         check=True, capture_output=True, text=True).stderr

    def mb(name):
        for line in err.splitlines():
            if line.strip().startswith(name):
                m = re.search(r"(\d+)([kM])\s*(\(\s*\d+%\))?\s*$", line)
                if m:
                    return int(m.group(1)) / (1 if m.group(2) == "M" else 1024)
        return None

    total, inst = mb("TOTAL"), mb("template instantiation")
    return (total, inst) if total is not None and inst is not None else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--compiler", default=os.environ.get("CXX", "c++"))
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build", "default"))
    ap.add_argument("--include-dir", default=os.path.join(ROOT, "include"))
    ap.add_argument("--per-header", action="store_true")
    ap.add_argument("--before", help="another include directory: adds a 'before' row of each program")
    ap.add_argument("--std-only", action="store_true",
                    help="adds a row of only the standard headers that multiproc's headers include")
    ap.add_argument("--memory", action="store_true",
                    help="adds g++'s allocated memory (total, template instantiation) per program")
    args = ap.parse_args()
    global INCLUDE
    INCLUDE = os.path.abspath(args.include_dir)

    flags = library_flags(args.build_dir)
    programs = dict(PROGRAMS)
    if args.per_header:
        inc = os.path.join(INCLUDE, "multiproc")
        for h in sorted(os.listdir(inc)):
            if h.endswith(".hpp"):
                programs[h] = "#include <multiproc/%s>\nint main() { return 0; }\n" % h

    if args.std_only:
        programs["std_only"] = std_only_program(args.compiler, flags, INCLUDE)
    includes = {name: INCLUDE for name in programs}
    if args.before:
        for name in list(PROGRAMS)[1:]:
            programs[name + " before"] = PROGRAMS[name]
            includes[name + " before"] = os.path.abspath(args.before)
    with tempfile.TemporaryDirectory() as tmp:
        srcs = {}
        for name, text in programs.items():
            srcs[name] = os.path.join(tmp, name.replace(".", "_").replace(" ", "_") + ".cpp")
            with open(srcs[name], "w") as f:
                f.write(text)
        obj = os.path.join(tmp, "out.o")
        wall = {name: [] for name in programs}
        cpu = {name: [] for name in programs}
        for _ in range(args.runs):
            for name in programs:
                w, c = compile_once(args.compiler, flags, srcs[name], obj, includes[name])
                wall[name].append(w)
                cpu[name].append(c)
        lines = {name: preprocessed_lines(args.compiler, flags, srcs[name], includes[name]) for name in programs}
        memory = {}
        if args.memory:
            memory = {name: gcc_memory(args.compiler, flags, srcs[name], obj, includes[name])
                      for name in programs}

    print("compiler: %s %s -I %s" % (args.compiler, " ".join(flags), INCLUDE))
    print("medians of %d runs, in seconds (load average %.1f)" % (args.runs, os.getloadavg()[0]))
    base_wall = statistics.median(wall["baseline"])
    base_cpu = statistics.median(cpu["baseline"])
    head = "%-22s %8s %8s %8s %8s %10s" % ("program", "wall", "+base", "cpu", "+base", "pp lines")
    print(head + ("  %8s %8s" % ("mem MB", "inst MB") if args.memory else ""))
    for name in programs:
        w = statistics.median(wall[name])
        c = statistics.median(cpu[name])
        row = "%-22s %8.2f %+8.2f %8.2f %+8.2f %10d" % (name, w, w - base_wall, c, c - base_cpu, lines[name])
        if args.memory:
            m = memory[name]
            row += "  %8.0f %8.0f" % m if m else "  %8s %8s" % ("-", "-")
        print(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
