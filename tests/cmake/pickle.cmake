# pickle_python_test runs tests/helpers/py_pickle_peer.py under each required Python: it needs
# the source tree's path.
if(TARGET pickle_python_test)
  target_compile_definitions(pickle_python_test PRIVATE MULTIPROC_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
endif()
