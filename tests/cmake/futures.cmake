# ProcessPoolExecutor::submit and parallel_map must reject what cannot ship at compile time,
# with the reason in the message (tests/compile_fail/expect_compile.cmake runs the compiler).
# The control must compile, so a check cannot pass for a wrong reason (a bad include path).
function(mp_futures_compile_check name src expect regex)
  add_test(NAME futures_compile.${name}
    COMMAND ${CMAKE_COMMAND}
      -DCXX=${CMAKE_CXX_COMPILER}
      -DSRC=${CMAKE_CURRENT_SOURCE_DIR}/compile_fail/${src}
      -DINCLUDE=${PROJECT_SOURCE_DIR}/include
      -DEXPECT=${expect}
      -DREGEX=${regex}
      -P ${CMAKE_CURRENT_SOURCE_DIR}/compile_fail/expect_compile.cmake)
  set_tests_properties(futures_compile.${name} PROPERTIES TIMEOUT 90)
endfunction()
mp_futures_compile_check(control_compiles futures_ok.cpp ok "")
mp_futures_compile_check(submit_lambda_capturing_string futures_submit_captures_string.cpp fail
  "task's target cannot be shipped to a worker process")
mp_futures_compile_check(parallel_map_pointer_items parallel_map_bad_item.cpp fail
  "task argument cannot be shipped to the worker process")
