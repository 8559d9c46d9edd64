# mp_compile_check(<test name> <source> ok|fail <regex>): a test that runs the compiler on
# tests/compile_fail/<source> through expect_compile.cmake. `ok`: it must compile (a control,
# so that a check cannot pass for a wrong reason such as a bad include path). `fail`: it must
# not, and the diagnostics must match <regex>, the reason the user is told.
set(MP_COMPILE_FAIL_DIR ${CMAKE_CURRENT_LIST_DIR})
function(mp_compile_check name src expect regex)
  add_test(NAME ${name}
    COMMAND ${CMAKE_COMMAND}
      -DCXX=${CMAKE_CXX_COMPILER}
      -DSRC=${MP_COMPILE_FAIL_DIR}/${src}
      -DINCLUDE=${PROJECT_SOURCE_DIR}/include
      -DEXPECT=${expect}
      -DREGEX=${regex}
      -P ${MP_COMPILE_FAIL_DIR}/expect_compile.cmake)
  set_tests_properties(${name} PROPERTIES TIMEOUT 90)
endfunction()
