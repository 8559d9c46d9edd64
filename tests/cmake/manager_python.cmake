# manager_python_test runs tests/helpers/py_manager_peer.py under each required Python: it needs
# the source tree's path.
if(TARGET manager_python_test)
  target_compile_definitions(manager_python_test PRIVATE MULTIPROC_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
endif()

# examples/python_manager_server.cpp served to examples/python_manager_client.py (Debian's
# python3): the Python client puts work into the C++ server's queue and reads the results.
if(MULTIPROC_BUILD_EXAMPLES)
  add_test(NAME example_python_manager
           COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/cmake/serve_and_run.sh
                   $<TARGET_FILE:python_manager_server>
                   /usr/bin/python3 ${PROJECT_SOURCE_DIR}/examples/python_manager_client.py)
  set_tests_properties(example_python_manager PROPERTIES TIMEOUT 60
                       PASS_REGULAR_EXPRESSION "squares: \\[0, 1, 4, 9, 16, 25, 36, 49, 64, 81\\].*server stopped")
endif()

# The other direction: examples/python_manager_server.py (Python's own BaseManager, Debian's
# python3) served to examples/py_manager_client.cpp, which computes the server's jobs on a Pool.
if(MULTIPROC_BUILD_EXAMPLES)
  add_test(NAME example_py_manager_client
           COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/cmake/serve_and_run.sh
                   ${PROJECT_SOURCE_DIR}/examples/python_manager_server.py
                   $<TARGET_FILE:py_manager_client>)
  set_tests_properties(example_py_manager_client PROPERTIES TIMEOUT 60
                       PASS_REGULAR_EXPRESSION "computed 20 jobs; the server's dict holds 20 results, 7 -> 343.*server saw 20 results; 7 -> 343")
endif()
