# ProcessPoolExecutor::submit and parallel_map must reject what cannot ship at compile time,
# with the reason in the message (tests/compile_fail/expect_compile.cmake runs the compiler).
# The control must compile, so a check cannot pass for a wrong reason (a bad include path).
mp_compile_check(futures_compile.control_compiles futures_ok.cpp ok "")
mp_compile_check(futures_compile.submit_lambda_capturing_string
  futures_submit_captures_string.cpp fail
  "task's target cannot be shipped to a worker process")
mp_compile_check(futures_compile.parallel_map_pointer_items parallel_map_bad_item.cpp fail
  "task argument cannot be shipped to the worker process")
