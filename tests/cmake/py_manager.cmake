# py_manager_client_test runs tests/helpers/py_manager_server.py under each required Python: it
# needs the source tree's path.
if(TARGET py_manager_client_test)
  target_compile_definitions(py_manager_client_test PRIVATE MULTIPROC_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
endif()
