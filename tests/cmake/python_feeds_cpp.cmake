# examples/python_feeds_cpp: the C++ program (a Listener and a Pool) and the Python script that
# feeds it, under Debian's python3, started together by the example's run.sh.
if(MULTIPROC_BUILD_EXAMPLES)
  set(dir ${PROJECT_SOURCE_DIR}/examples/python_feeds_cpp)
  add_test(NAME example_python_feeds_cpp
           COMMAND sh ${dir}/run.sh $<TARGET_FILE:python_feeds_cpp> /usr/bin/python3 ${dir}/feed.py)
  set_tests_properties(example_python_feeds_cpp PROPERTIES TIMEOUT 60
                       PASS_REGULAR_EXPRESSION "python checked 2000 results.*served 8 batches, 2000 items")
endif()
