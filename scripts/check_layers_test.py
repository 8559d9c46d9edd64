#!/usr/bin/env python3
"""Tests of scripts/check_layers.py: each rule, on a small tree made for it, fires where it must
and stays quiet where it must (python3 scripts/check_layers_test.py; run by .ci/run)."""

import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "check_layers.py")
DOC = os.path.join(HERE, "..", "docs", "ARCHITECTURE.md")


class CheckLayersTest(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="check_layers_test")
        os.makedirs(os.path.join(self.root, "docs"))
        shutil.copy(DOC, os.path.join(self.root, "docs", "ARCHITECTURE.md"))
        # A clean tree: a public header and its implementation, one system call in src/sys/.
        self.write("include/multiproc/errors.hpp", "#pragma once\n#include <string>\n")
        self.write("include/multiproc/pool.hpp", '#pragma once\n#include "multiproc/errors.hpp"\n')
        self.write("src/pool.cpp", '#include "multiproc/pool.hpp"\n#include "sys/io.hpp"\n')
        self.write("src/sys/io.hpp", "#pragma once\n#include <sys/types.h>\n")
        self.write("src/sys/io.cpp", '#include "sys/io.hpp"\n#include <unistd.h>\n')
        self.write("tests/pool_test.cpp", '#include "multiproc/pool.hpp"\n#include "sys/io.hpp"\n'
                   "#include <unistd.h>\n")

    def tearDown(self):
        shutil.rmtree(self.root)

    def write(self, rel, text):
        path = os.path.join(self.root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)

    def run_check(self):
        r = subprocess.run([sys.executable, SCRIPT, "--root", self.root], capture_output=True, text=True)
        return r.returncode, r.stdout + r.stderr

    def assert_fails_with(self, *fragments):
        rc, out = self.run_check()
        self.assertEqual(rc, 1, out)
        for f in fragments:
            self.assertIn(f, out)

    def test_clean_tree_passes_and_says_what_it_checked(self):
        rc, out = self.run_check()
        self.assertEqual(rc, 0, out)
        self.assertIn("#include lines", out)
        self.assertIn("functions measured", out)

    def test_include_that_climbs_a_layer(self):
        self.write("include/multiproc/errors.hpp", '#pragma once\n\n#include "multiproc/pool.hpp"\n')
        self.assert_fails_with("include/multiproc/errors.hpp:3: layers:", "climbs a layer")

    def test_front_ends_are_independent(self):
        self.write("include/multiproc/futures.hpp", '#pragma once\n#include "multiproc/pool.hpp"\n')
        self.assert_fails_with("include/multiproc/futures.hpp:2: layers:", "independent")

    def test_cycle_of_headers(self):
        self.write("src/popen.hpp", '#pragma once\n#include "spawn.hpp"\n')
        self.write("src/spawn.hpp", '#pragma once\n#include "popen.hpp"\n')
        self.assert_fails_with("cycles: the headers src/popen.hpp, src/spawn.hpp")

    def test_cycle_of_modules_through_implementation_files(self):
        self.write("include/multiproc/synchronize.hpp", "#pragma once\n")
        self.write("src/synchronize.cpp", '#include "owner_tid.hpp"\n')
        self.write("src/owner_tid.hpp", '#pragma once\n#include "multiproc/synchronize.hpp"\n')
        self.assert_fails_with("cycles: the modules owner_tid, synchronize")

    def test_os_header_outside_sys(self):
        self.write("src/pool.cpp", '#include "multiproc/pool.hpp"\n#include <sys/wait.h>\n'
                   "#include <sys/types.h>\n")
        rc, out = self.run_check()
        self.assertEqual(rc, 1, out)
        self.assertIn("src/pool.cpp:2: system: <sys/wait.h>", out)
        self.assertNotIn("sys/types.h>", out.split("allowed:")[1].split("\n", 1)[1])

    def test_file_that_no_row_matches(self):
        self.write("src/mystery.cpp", "int x;\n")
        self.assert_fails_with("src/mystery.cpp:1: layers: matches no row")

    def test_examples_include_public_headers_only(self):
        self.write("examples/demo.cpp", '#include "multiproc/pool.hpp"\n#include "sys/io.hpp"\n')
        self.assert_fails_with("examples/demo.cpp:2: outside:")

    def test_public_header_includes_no_internal_one(self):
        self.write("include/multiproc/pool.hpp", '#pragma once\n#include "sys/io.hpp"\n')
        self.assert_fails_with("include/multiproc/pool.hpp:2: layers: the public header includes the internal")

    def test_file_size(self):
        self.write("src/pool.cpp", "int x;\n" * 601)
        self.assert_fails_with("src/pool.cpp:601: file size: 601 lines")

    def test_file_size_of_tests_bench_and_examples(self):
        for rel in ("tests/pool_test.cpp", "bench/harness.cpp", "examples/demo.cpp"):
            self.write(rel, "int x;\n" * 600)
            rc, out = self.run_check()
            self.assertEqual(rc, 0, out)
            self.write(rel, "int x;\n" * 601)
            self.assert_fails_with(f"error: {rel}:601: file size: 601 lines")
            self.write(rel, "int x;\n")

    def test_function_size_and_its_escape_hatch(self):
        body = "    x();\n" * 125
        self.write("src/pool.cpp", "namespace mp {\nstruct S {\n    S(int a) : a_{a}, b_{{1, 2}} {\n"
                   + body + "    }\n    int a_;\n};\n}\n")
        self.assert_fails_with("src/pool.cpp:3: function size: S is 127 lines")
        self.write("src/pool.cpp", "void f() {\n" + body + "}\n"
                   "// Why: one loop over every frame kind.\n// Long function: read top to bottom.\n"
                   "void g() {\n" + body + "    auto s = \"}\";\n}\n")
        rc, out = self.run_check()
        self.assertIn("src/pool.cpp:1: function size: f is 127 lines", out)
        self.assertNotIn(": g is", out)
        self.assertIn("1 over 120 lines with a reason", out)


if __name__ == "__main__":
    unittest.main()
