# mp::Pool must reject, at compile time and with the reason, a task that cannot travel to a
# worker. A control that must compile guards against a check passing for a wrong reason.
set(MP_POOL_COMPILE_FAIL_DIR ${CMAKE_CURRENT_SOURCE_DIR}/compile_fail)
function(mp_pool_compile_check name src expect regex)
  add_test(NAME pool_compile.${name}
    COMMAND ${CMAKE_COMMAND}
      -DCXX=${CMAKE_CXX_COMPILER}
      -DSRC=${MP_POOL_COMPILE_FAIL_DIR}/${src}
      -DINCLUDE=${PROJECT_SOURCE_DIR}/include
      -DEXPECT=${expect}
      -DREGEX=${regex}
      -P ${MP_POOL_COMPILE_FAIL_DIR}/expect_compile.cmake)
  set_tests_properties(pool_compile.${name} PROPERTIES TIMEOUT 90)
endfunction()
mp_pool_compile_check(control_shippable_tasks_compile pool_ok.cpp ok "")
mp_pool_compile_check(map_lambda_capturing_string pool_unshippable_task.cpp fail
  "task's target cannot be shipped to a worker process")
mp_pool_compile_check(apply_raw_pointer_argument pool_unshippable_apply.cpp fail
  "task argument cannot be shipped to the worker process")
