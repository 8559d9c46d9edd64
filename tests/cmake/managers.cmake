# The remote manager example as two programs: a server at a TCP address, one client that puts,
# another that gets what it put, then one that stops the server.
if(MULTIPROC_BUILD_EXAMPLES)
  add_test(NAME example_remote_manager
           COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/cmake/remote_manager.sh
                   $<TARGET_FILE:manager_server> $<TARGET_FILE:manager_client>)
  set_tests_properties(example_remote_manager PROPERTIES TIMEOUT 60
                       PASS_REGULAR_EXPRESSION "got: hello from another program.*server stopped")
endif()
