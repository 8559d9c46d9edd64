# The helpers of callable's tests (callable_test, callable_exec_test, callable_forged_test):
# targets in shared libraries (one linked, one without a build id, one only dlopen'ed at run
# time, one stripped, one that must never be loaded), and the compile-failure checks of
# package_task.

set(MP_CALLABLE_LIB_DIR ${CMAKE_CURRENT_SOURCE_DIR}/callable_lib)

# Linked to the tests: functions and a packaged task that live outside the executable.
add_library(mp_callable_testlib SHARED ${MP_CALLABLE_LIB_DIR}/callable_lib.cpp)
target_link_libraries(mp_callable_testlib PUBLIC multiproc::multiproc PRIVATE multiproc_warnings)
target_include_directories(mp_callable_testlib PUBLIC ${MP_CALLABLE_LIB_DIR})

# Linked to the tests, without a GNU build id: identified by path + size + mtime instead.
add_library(mp_callable_nobid SHARED ${MP_CALLABLE_LIB_DIR}/callable_nobid.cpp)
target_link_libraries(mp_callable_nobid PRIVATE multiproc_warnings)
target_link_options(mp_callable_nobid PRIVATE -Wl,--build-id=none)

# Never linked: the test dlopen()s it, so a spawned child must load it by path itself.
add_library(mp_callable_plugin MODULE ${MP_CALLABLE_LIB_DIR}/callable_plugin.cpp)
target_link_libraries(mp_callable_plugin PRIVATE multiproc::multiproc multiproc_warnings)

# Never loaded: its constructor creates a file, the proof that a forged identity naming it with
# another build id did not make this process load it.
add_library(mp_callable_trace MODULE ${MP_CALLABLE_LIB_DIR}/callable_trace.cpp)
target_link_libraries(mp_callable_trace PRIVATE multiproc_warnings)

# dlopen()ed by the test, linked with -s (no .symtab): what a stripped module can ship.
add_library(mp_callable_stripped MODULE ${MP_CALLABLE_LIB_DIR}/callable_stripped.cpp)
target_link_libraries(mp_callable_stripped PRIVATE multiproc_warnings)
target_link_options(mp_callable_stripped PRIVATE -s)

# The three binaries of callable's tests (in process, across fork and exec, forged packages).
foreach(t callable_test callable_exec_test callable_forged_test)
  if(TARGET ${t})
    target_link_libraries(${t} PRIVATE mp_callable_testlib mp_callable_nobid)
    add_dependencies(${t} mp_callable_plugin mp_callable_trace mp_callable_stripped)
    target_compile_definitions(${t} PRIVATE
      MP_CALLABLE_PLUGIN_PATH="$<TARGET_FILE:mp_callable_plugin>"
      MP_CALLABLE_TRACE_PATH="$<TARGET_FILE:mp_callable_trace>"
      MP_CALLABLE_STRIPPED_PATH="$<TARGET_FILE:mp_callable_stripped>")
  endif()
endforeach()

# package_task must reject what cannot ship at compile time, with the reason in the message.
# Each check runs the compiler on one source (tests/compile_fail/compile_check.cmake).
mp_compile_check(callable_compile.control_shippable_task_compiles task_ok.cpp ok "")
mp_compile_check(callable_compile.lambda_capturing_string task_captures_string.cpp fail
  "task's target cannot be shipped to a worker process")
mp_compile_check(callable_compile.std_function_target task_std_function.cpp fail
  "task's target cannot be shipped to a worker process")
mp_compile_check(callable_compile.unencodable_argument task_bad_argument.cpp fail
  "task argument cannot be shipped to the worker process")
mp_compile_check(callable_compile.unencodable_result task_bad_result.cpp fail
  "result type cannot be shipped back")
