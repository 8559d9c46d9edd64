# spawn_test / forkserver_test helpers: a Process target in a shared library, and a program that
# uses spawn/forkserver without calling mp::init (the recursive-spawn pitfall).
set(MP_START_METHODS_DIR ${CMAKE_CURRENT_SOURCE_DIR}/start_methods_lib)

add_library(mp_start_methods_testlib SHARED ${MP_START_METHODS_DIR}/start_methods_lib.cpp)
target_link_libraries(mp_start_methods_testlib PUBLIC multiproc::multiproc PRIVATE multiproc_warnings)
target_include_directories(mp_start_methods_testlib PUBLIC ${MP_START_METHODS_DIR})

add_executable(mp_noinit_helper ${MP_START_METHODS_DIR}/noinit_main.cpp)
target_link_libraries(mp_noinit_helper PRIVATE multiproc::multiproc multiproc_warnings)
# Another program's build, calling mp::init: set_executable to it must be refused.
add_executable(mp_other_build_helper ${MP_START_METHODS_DIR}/other_build_main.cpp)
target_link_libraries(mp_other_build_helper PRIVATE multiproc::multiproc multiproc_warnings)

foreach(t spawn_test forkserver_test)
  if(TARGET ${t})
    target_link_libraries(${t} PRIVATE mp_start_methods_testlib)
    add_dependencies(${t} mp_noinit_helper mp_other_build_helper)
    target_compile_definitions(${t} PRIVATE MP_NOINIT_HELPER="$<TARGET_FILE:mp_noinit_helper>"
                               MP_OTHER_BUILD_HELPER="$<TARGET_FILE:mp_other_build_helper>")
  endif()
endforeach()

# examples/hello_process under each start method (argv[1]). Examples are configured after
# tests, so the option is tested rather than the target; add_test resolves the target at
# generate time.
if(MULTIPROC_BUILD_EXAMPLES)
  foreach(method fork spawn forkserver)
    add_test(NAME example_hello_process.${method} COMMAND hello_process ${method})
    set_tests_properties(example_hello_process.${method} PROPERTIES TIMEOUT 60
      PASS_REGULAR_EXPRESSION
      "start method: ${method}.*Hello from process-1 \\(Process-1, pid [0-9]+, parent [0-9]+\\).*Process-1 exited with code 0")
  endforeach()
endif()
