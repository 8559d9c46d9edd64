# cmake -DCXX=... -DSRC=... -DINCLUDE=... -DEXPECT=ok|fail -DREGEX=... -P expect_compile.cmake
# Compiles SRC (syntax and templates only). EXPECT=ok: it must compile. EXPECT=fail: it must
# not, and the compiler's diagnostics must match REGEX (the reason the user is told).
execute_process(
  COMMAND ${CXX} -std=c++20 -fsyntax-only -I${INCLUDE} ${SRC}
  RESULT_VARIABLE rc
  OUTPUT_VARIABLE out
  ERROR_VARIABLE err)
set(diag "${out}${err}")
if(EXPECT STREQUAL "ok")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "expected ${SRC} to compile, it did not:\n${diag}")
  endif()
  message(STATUS "${SRC} compiles, as expected")
elseif(EXPECT STREQUAL "fail")
  if(rc EQUAL 0)
    message(FATAL_ERROR "expected ${SRC} NOT to compile, but it compiled")
  endif()
  if(NOT diag MATCHES "${REGEX}")
    message(FATAL_ERROR "${SRC} failed to compile, but the diagnostics do not give the reason "
                        "'${REGEX}':\n${diag}")
  endif()
  message(STATUS "${SRC} is rejected with the reason '${REGEX}', as expected")
else()
  message(FATAL_ERROR "EXPECT must be ok or fail, not '${EXPECT}'")
endif()
