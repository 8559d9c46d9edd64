# The performance report and the timeline of a real run (examples/report_demo), checked with
# json.load and in Debian's headless Chromium (scripts/install-deps.sh installs it), once per
# start method.
if(MULTIPROC_BUILD_EXAMPLES)
  find_package(Python3 REQUIRED COMPONENTS Interpreter)
  foreach(method fork spawn forkserver)
    add_test(NAME trace_browser.${method}
             COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/trace_browser_test.py
                     $<TARGET_FILE:report_demo> ${method})
    set_tests_properties(trace_browser.${method} PROPERTIES TIMEOUT 180 LABELS unit)
  endforeach()
endif()
