#!/usr/bin/env python3
"""Checks the structure docs/ARCHITECTURE.md describes, on every C++ file of the tree.

    python3 scripts/check_layers.py [--root DIR] [--quiet]

Rules (each violation is printed as file:line and the check fails, exit status 1):

  layers        every #include of a library file (include/, src/) points to a module of the
                same layer or a lower one (the table in docs/ARCHITECTURE.md, read from there,
                so the page and the check cannot disagree); the modules of a layer marked
                "(independent)" do not include one another; a library file that matches no row
                of the table is an error (add a row).
  cycles        no header that includes itself through others, and no two modules (rows of
                the table) that include one another, directly or through other modules.
  system        outside src/sys/, no OS header (<unistd.h>, <fcntl.h>, <signal.h>, <poll.h>,
                <pthread.h>, <dlfcn.h>, <sys/*.h> but <sys/types.h>, <linux/*.h>, ...): system
                calls live in src/sys/. ALLOWED_OS_HEADERS lists the exceptions, with reasons.
  outside       tests/ may include any public or src/ header (tests reach inside); examples/
                and bench/ only public headers and their own files (they are user programs).
  file size     no C++ file over 600 lines, in the library and in tests/, bench/ and examples/
                alike (split a long test file by topic, with its shared helpers in
                tests/helpers/).
  function size no function of a library file over 120 lines unless the comment right above it
                says why, with a line `// Long function: <the reason>`.

Functions in tests/, bench/ and examples/ over that size are reported as warnings.
Python 3 standard library only.
"""

import argparse
import fnmatch
import os
import re
import sys

FILE_LIMIT = 600
FUNCTION_LIMIT = 120
LONG_FUNCTION_MARK = re.compile(r"//\s*Long function:\s*\S", re.IGNORECASE)

LIBRARY_DIRS = ("include", "src")
OUTSIDE_DIRS = ("tests", "examples", "bench")
SOURCE_EXTENSIONS = (".hpp", ".cpp", ".h", ".cc")

# OS headers: what a file includes to make system calls. Allowed only in src/sys/.
OS_HEADERS = {
    "unistd.h", "fcntl.h", "signal.h", "poll.h", "pthread.h", "sched.h", "spawn.h", "dlfcn.h",
    "link.h", "elf.h", "execinfo.h", "netdb.h", "termios.h", "ifaddrs.h", "dirent.h", "grp.h",
    "pwd.h", "semaphore.h", "mqueue.h", "aio.h", "syslog.h", "ucontext.h",
}
OS_HEADER_PREFIXES = ("sys/", "linux/", "asm/", "netinet/", "arpa/", "net/")
# Exceptions, each with its reason. Keys: a path pattern ("*" for every file), values: headers.
ALLOWED_OS_HEADERS = {
    # Types only (pid_t, ssize_t, off_t) that public signatures spell; declares no call.
    "*": {"sys/types.h"},
}

TABLE_START = "<!-- layer table: read by scripts/check_layers.py -->"
TABLE_END = "<!-- end of layer table -->"


class Module:
    def __init__(self, rank, layer, name, patterns, independent):
        self.rank, self.layer, self.name = rank, layer, name
        self.patterns, self.independent = patterns, independent

    def __str__(self):
        return f"{self.name} (layer {self.rank}, {self.layer})"


def read_table(doc_path):
    """The rows of the layer table in docs/ARCHITECTURE.md, bottom layer first."""
    text = open(doc_path, encoding="utf-8").read()
    if TABLE_START not in text or TABLE_END not in text:
        sys.exit(f"{doc_path}: the layer table markers are missing ({TABLE_START!r} ... {TABLE_END!r})")
    block = text[text.index(TABLE_START) + len(TABLE_START):text.index(TABLE_END)]
    modules = []
    for line in block.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 4 or not cells[0].isdigit():
            continue  # the header, the separator, prose
        rank, layer, name, files = int(cells[0]), cells[1], cells[2].strip("`"), cells[3]
        independent = "(independent)" in layer
        layer = layer.replace("(independent)", "").strip()
        patterns = [p.strip().strip("`") for p in files.split(",") if p.strip()]
        modules.append(Module(rank, layer, name, patterns, independent))
    if not modules:
        sys.exit(f"{doc_path}: no rows in the layer table")
    return modules


def key_of(rel):
    """The name a library file is matched by: its path below include/multiproc/[detail/] or
    src/, without extension (include/multiproc/detail/engine.hpp -> engine, src/sys/io.cpp ->
    sys/io)."""
    stem = os.path.splitext(rel)[0]
    for prefix in ("include/multiproc/detail/", "include/multiproc/", "src/"):
        if stem.startswith(prefix):
            return stem[len(prefix):]
    return stem


def module_of(rel, modules):
    key = key_of(rel)
    for m in modules:
        if any(fnmatch.fnmatchcase(key, p) for p in m.patterns):
            return m
    return None


# ---------------------------------------------------------------------------------------------
# Reading C++: includes, and the text without comments and literals (for function extents).

INCLUDE_RE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')


def includes_of(lines):
    out = []
    for i, line in enumerate(lines, 1):
        m = INCLUDE_RE.match(line)
        if m:
            out.append((i, m.group(1) == "<", m.group(2)))
    return out


def blank_comments_and_literals(text):
    """The text with comments, string and character literals and preprocessor lines replaced
    by spaces, newlines kept (so offsets still give line numbers)."""
    out = []
    i, n = 0, len(text)
    at_line_start = True
    while i < n:
        c = text[i]
        if at_line_start and c == "#":
            j = i
            while j < n and text[j] != "\n":  # a directive, with its continuation lines
                j = j + 2 if text[j] == "\\" and j + 1 < n else j + 1
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
            continue
        if c in " \t":
            out.append(c)
            i += 1
            continue
        at_line_start = c == "\n"
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == "R" and text.startswith('R"', i) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            m = re.match(r'R"([^(\s]*)\(', text[i:])
            end = text.find(")" + m.group(1) + '"', i) if m else -1
            j = n if end < 0 else end + len(m.group(1)) + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c in "\"'":
            if c == "'" and i > 0 and text[i - 1].isalnum():  # digit separator 1'000
                out.append(" ")
                i += 1
                continue
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
            out.append(" " * (j - i))
            i = j
        else:
            out.append(c)
            i += 1
    return "".join(out)


def strip_template_heads(header):
    """The declaration without its leading template<...> clauses, attributes and access labels."""
    h = header.strip()
    while True:
        h = re.sub(r"^(public|private|protected)\s*:(?!:)\s*", "", h)
        h = re.sub(r"^\[\[.*?\]\]\s*", "", h, flags=re.S)
        if not h.startswith("template"):
            return h
        start = h.find("<")
        if start < 0:
            return h
        depth, j = 0, start
        while j < len(h):
            if h[j] == "<":
                depth += 1
            elif h[j] == ">" and h[j - 1] != "-":
                depth -= 1
                if depth == 0:
                    break
            j += 1
        h = h[j + 1:].strip()


CLASS_RE = re.compile(r"\b(class|struct|union|enum)\b")
INIT_LIST_RE = re.compile(r"\)\s*(?:const\s*)?(?:noexcept(?:\s*\([^)]*\))?\s*)?:(?!:)")


def classify(header):
    h = strip_template_heads(header)
    if re.match(r"(inline\s+)?namespace\b", h) or re.match(r'extern\s*"', h) or re.match(r"extern\s*$", h):
        return "ns"
    if re.match(r"extern\s+\"?", h) and "(" not in h:
        return "ns"
    k = CLASS_RE.search(h)
    p = h.find("(")
    if k and (p < 0 or k.start() < p) and "=" not in h[:k.start()]:
        return "class"
    if p >= 0:
        return "func"
    return "other"


def functions_of(text):
    """(first line, last line, name) of each function body at namespace or class scope."""
    code = blank_comments_and_literals(text)
    line_at = []
    line = 1
    for ch in code:
        line_at.append(line)
        if ch == "\n":
            line += 1
    found = []
    stack = []  # (kind, header start offset)
    header_start = 0
    for i, ch in enumerate(code):
        if ch in ";":
            if not stack or stack[-1][0] in ("ns", "class"):
                header_start = i + 1
        elif ch == "{":
            outer = stack[-1][0] if stack else "ns"
            if outer in ("ns", "class"):
                header = code[header_start:i]
                before = header.rstrip()
                if before and (before[-1].isalnum() or before[-1] in "_>") and INIT_LIST_RE.search(header) \
                        and classify(header) == "func":
                    stack.append(("init", header_start))  # a member initialised with braces
                else:
                    stack.append((classify(header), header_start))
                    if stack[-1][0] in ("ns", "class"):
                        header_start = i + 1
            elif outer == "init":
                stack.append(("init", header_start))
            else:
                stack.append(("block", None))
        elif ch == "}":
            if not stack:
                continue
            kind, start = stack.pop()
            if kind == "init":
                continue  # the declaration goes on: its header is not finished
            if kind == "func":
                header = code[start:i]
                lead = len(header) - len(header.lstrip())
                text_start = start + lead
                # Skip an access label so that the function starts at its own line.
                m = re.match(r"(public|private|protected)\s*:(?!:)\s*", code[text_start:])
                if m:
                    text_start += m.end()
                first, last = line_at[text_start], line_at[i]
                name = re.sub(r"\s+", " ", strip_template_heads(header).split("(")[0]).strip()
                found.append((first, last, name.split(" ")[-1] if name else "?"))
            if not stack or stack[-1][0] in ("ns", "class"):
                header_start = i + 1
    return found


def has_long_reason(lines, first):
    """Whether the comment block right above line `first` (1-based) gives a reason."""
    j = first - 2
    while j >= 0 and lines[j].strip().startswith("//"):
        if LONG_FUNCTION_MARK.search(lines[j]):
            return True
        j -= 1
    return False


# ---------------------------------------------------------------------------------------------


def list_files(root):
    out = []
    for top in LIBRARY_DIRS + OUTSIDE_DIRS:
        for dirpath, dirnames, filenames in os.walk(os.path.join(root, top)):
            dirnames[:] = sorted(d for d in dirnames if d not in ("corpus", "build"))
            for f in sorted(filenames):
                if f.endswith(SOURCE_EXTENSIONS):
                    out.append(os.path.relpath(os.path.join(dirpath, f), root).replace(os.sep, "/"))
    return out


def resolve(root, rel, target, all_files, basenames):
    """The tree file a quoted (or <multiproc/...>) include names, or None (a system header)."""
    here = os.path.dirname(rel)
    candidates = [os.path.normpath(os.path.join(here, target)).replace(os.sep, "/"),
                  "include/" + target, "src/" + target]
    top = rel.split("/")[0]
    if top in OUTSIDE_DIRS:
        candidates.append(top + "/" + target)
    for c in candidates:
        if c in all_files:
            return c
    if top in OUTSIDE_DIRS:  # helper libraries with their own include directory
        same = [f for f in basenames.get(os.path.basename(target), []) if f.startswith(top + "/")]
        if len(same) == 1:
            return same[0]
    return None


def os_header_allowed(rel, header):
    for pattern, headers in ALLOWED_OS_HEADERS.items():
        if fnmatch.fnmatchcase(rel, pattern) and header in headers:
            return True
    return False


def is_os_header(header):
    return header in OS_HEADERS or header.startswith(OS_HEADER_PREFIXES)


def find_cycles(edges):
    """Strongly connected components of more than one node (Tarjan, iterative)."""
    graph = {}
    for (a, b) in edges:
        graph.setdefault(a, set()).add(b)
        graph.setdefault(b, set())
    index, low, on_stack, stack, out = {}, {}, set(), [], []
    counter = [0]
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, it = work[-1]
            advanced = False
            for nxt in it:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter[0]
                    counter[0] += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                    advanced = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                scc = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    scc.append(w)
                    if w == node:
                        break
                if len(scc) > 1:
                    out.append(sorted(scc))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    ap.add_argument("--quiet", action="store_true", help="print the violations and the verdict only")
    args = ap.parse_args()
    root = os.path.abspath(args.root)
    modules = read_table(os.path.join(root, "docs", "ARCHITECTURE.md"))

    files = list_files(root)
    all_files = set(files)
    basenames = {}
    for f in files:
        basenames.setdefault(os.path.basename(f), []).append(f)

    errors, warnings = [], []
    counts = dict(files=len(files), library=0, includes=0, project_edges=0, functions=0,
                  long_with_reason=0)
    header_edges = {}  # (header, header) -> file:line
    module_edges = {}  # (module, module) -> first file:line
    longest = (0, "")

    for rel in files:
        top = rel.split("/")[0]
        library = top in LIBRARY_DIRS
        text = open(os.path.join(root, rel), encoding="utf-8", errors="replace").read()
        lines = text.split("\n")
        nlines = len(lines) - (1 if text.endswith("\n") else 0)
        where = (errors if library else warnings)
        if nlines > FILE_LIMIT:
            errors.append(f"{rel}:{nlines}: file size: {nlines} lines, over {FILE_LIMIT}")

        mod = module_of(rel, modules) if library else None
        if library:
            counts["library"] += 1
            if mod is None:
                errors.append(f"{rel}:1: layers: matches no row of the layer table "
                              f"(key '{key_of(rel)}'): add it to docs/ARCHITECTURE.md")
        in_sys = rel.startswith("src/sys/")

        for line_no, angled, target in includes_of(lines):
            counts["includes"] += 1
            project = not angled or target.startswith("multiproc/")
            dest = resolve(root, rel, target, all_files, basenames) if project else None
            if dest is None:
                if project and library:
                    errors.append(f"{rel}:{line_no}: layers: \"{target}\" names no file of the tree")
                if angled and library and not in_sys and is_os_header(target) \
                        and not os_header_allowed(rel, target):
                    errors.append(f"{rel}:{line_no}: system: <{target}> outside src/sys/ "
                                  f"(system calls belong in src/sys/)")
                continue
            counts["project_edges"] += 1
            dest_top = dest.split("/")[0]
            if not library:
                if dest_top == "src" and top != "tests":
                    errors.append(f"{rel}:{line_no}: outside: {top}/ includes the internal header "
                                  f"\"{target}\" ({dest}); only tests/ may reach inside src/")
                elif dest_top in OUTSIDE_DIRS and dest_top != top:
                    errors.append(f"{rel}:{line_no}: outside: {top}/ includes {dest}, a file of {dest_top}/")
                continue
            if dest_top not in LIBRARY_DIRS:
                errors.append(f"{rel}:{line_no}: layers: the library includes {dest}, outside include/ and src/")
                continue
            if top == "include" and dest_top == "src":
                errors.append(f"{rel}:{line_no}: layers: the public header includes the internal {dest}; "
                              f"public headers include public headers only")
            if rel.endswith((".hpp", ".h")) and dest.endswith((".hpp", ".h")):
                header_edges.setdefault((rel, dest), f"{rel}:{line_no}")
            dmod = module_of(dest, modules)
            if mod is None or dmod is None or mod is dmod:
                continue
            module_edges.setdefault((mod.name, dmod.name), f"{rel}:{line_no}")
            if dmod.rank > mod.rank:
                errors.append(f"{rel}:{line_no}: layers: {mod} includes \"{target}\" of {dmod}: "
                              f"an include that climbs a layer")
            elif dmod.rank == mod.rank and mod.independent:
                errors.append(f"{rel}:{line_no}: layers: {mod} includes \"{target}\" of {dmod}: the "
                              f"modules of layer '{mod.layer}' are independent of one another")

        if rel.endswith(SOURCE_EXTENSIONS):
            for first, last, name in functions_of(text):
                counts["functions"] += 1
                length = last - first + 1
                if length > longest[0]:
                    longest = (length, f"{rel}:{first} {name}")
                if length <= FUNCTION_LIMIT:
                    continue
                if has_long_reason(lines, first):
                    counts["long_with_reason"] += 1
                    continue
                where.append(f"{rel}:{first}: function size: {name} is {length} lines, over "
                             f"{FUNCTION_LIMIT}, and the comment above it gives no "
                             f"'// Long function: <reason>'")

    for what, edges in (("headers", header_edges), ("modules", module_edges)):
        for scc in find_cycles(edges):
            inside = set(scc)
            inner = sorted((at, a, b) for (a, b), at in edges.items() if a in inside and b in inside)
            how = "; ".join(f"{a} -> {b} ({at})" for at, a, b in inner)
            errors.append(f"{inner[0][0]}: cycles: the {what} {', '.join(scc)} include one another: {how}")

    if not args.quiet:
        layers = sorted({(m.rank, m.layer) for m in modules})
        print(f"check_layers: {counts['files']} files ({counts['library']} in include/ and src/, the "
              f"rest in tests/, examples/, bench/), {counts['includes']} #include lines, "
              f"{counts['project_edges']} of them to files of the tree")
        print(f"  layers: {len(modules)} modules in {len(layers)} layers, from docs/ARCHITECTURE.md "
              f"({', '.join(f'{r} {l}' for r, l in layers)})")
        print(f"  cycles: {len(header_edges)} header-to-header includes, {len(module_edges)} "
              f"module-to-module dependencies")
        print(f"  system: OS headers outside src/sys/ (allowed: "
              f"{', '.join(sorted(h for v in ALLOWED_OS_HEADERS.values() for h in v))})")
        print(f"  sizes: files over {FILE_LIMIT} lines; {counts['functions']} functions measured, "
              f"{counts['long_with_reason']} over {FUNCTION_LIMIT} lines with a reason, the longest "
              f"{longest[0]} lines ({longest[1]})")
    for w in warnings:
        print(f"warning: {w}")
    for e in errors:
        print(f"error: {e}")
    if errors:
        print(f"check_layers: FAILED, {len(errors)} violations ({len(warnings)} warnings)")
        return 1
    print(f"check_layers: OK ({len(warnings)} warnings)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
